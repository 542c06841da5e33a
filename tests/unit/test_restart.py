"""The restart and last-ACK experiments' values on literal inputs: result.json written and
read back, damaged files refused in one line naming the field, the findings' sentences,
the option refusals (exit 2, one line) and the remedies preset's cells."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from portstorm.core.errors import UsageError
from portstorm.core.restart import load_restart
from portstorm.core.restartfindings import restart_findings
from portstorm.core.restartlastack import CaseResult, case_finding, client_ruleset
from portstorm.core.sweep import check_factors, expand, parse_vary, preset
from tests.support.cli import invoke
from tests.support.restartdata import restart_result


def test_a_restart_result_json_reads_back_as_written() -> None:
    doc = restart_result().to_json()
    assert doc["restart"]["first_ok_without_reuseaddr_s"] == 61.0
    assert set(doc["restart"]["binds"][0]) == {"t", "reuseaddr", "reuseport", "ok", "errno",
                                               "server_time_wait"}  # fmt: skip
    back = load_restart(copy.deepcopy(doc), "result.json")
    assert back.to_json() == doc


def test_no_plain_bind_that_succeeded_is_null() -> None:
    doc = restart_result(first_plain_ok_at=None).to_json()
    assert doc["restart"]["first_ok_without_reuseaddr_s"] is None
    assert load_restart(doc, "r").restart.first_ok_without_reuseaddr_s is None


def _damaged(change: Any) -> dict[str, Any]:
    doc = restart_result().to_json()
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d["restart"]["binds"][0].update(ok="yes"), "restart.binds[0].ok"),
        (lambda d: d["restart"]["binds"][1].update(errno="EADDRINUSE"), "binds[1].errno"),
        (lambda d: d["restart"]["binds"][0].pop("t"), "binds[0].t"),
        (lambda d: d["restart"].update(binds=[]), "first_ok_without_reuseaddr_s"),
        (lambda d: d["scenario"].update(rate=-1), "rate"),
        (lambda d: d.update(format="portstorm.restart/9"), "upgrade portstorm"),
        (lambda d: d.update(format="portstorm.run/1"), "not a portstorm restart result"),
    ],
)
def test_a_damaged_restart_result_is_one_line_naming_the_field(change: Any, fragment: str) -> None:
    with pytest.raises(UsageError) as e:
        load_restart(_damaged(change), "r/result.json")
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_the_findings_say_the_drain_time_and_what_each_option_did() -> None:
    text = [f.text for f in restart_findings(restart_result())]
    assert "failed with EADDRINUSE 2 times" in text[0] and "first succeeded 61.0 s" in text[0]
    assert text[1].startswith("With SO_REUSEADDR, bind() succeeded at once")
    assert text[2].startswith("With SO_REUSEPORT, bind() failed too")
    waited = restart_findings(restart_result(first_plain_ok_at=None))[0].text
    assert "every time for 30.0 s" in waited and "--max-wait 90 s" in waited


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["restart", "--rate", "0"], "--rate 0 is out of range"),
        (["restart", "--max-wait", "601"], "--max-wait 601 is out of range"),
        (["restart", "--duration", "x"], "--duration 'x' is not valid"),
        (["restart", "--probe-interval", "0.01"], "--probe-interval"),
        (["restart", "--old-listener", "always"], "allowed reuseaddr, reuseport, both, none"),
        (["lastack", "--share", "101"], "--share 101 is out of range"),
        (["lastack", "--connections", "1.5"], "--connections '1.5' is not valid"),
        (["lastack", "--cases", "time_wait,nope"], "unknown 'nope'"),
    ],
)
def test_a_bad_restart_or_last_ack_option_is_refused_in_one_line(
    argv: list[str], fragment: str
) -> None:
    code, err = invoke(argv)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and fragment in err, err


def test_the_last_ack_rule_matches_the_fourth_packet_and_says_all_and_none_plainly() -> None:
    half = client_ruleset("198.18.0.2", 50)
    assert "ct original packets 4" in half and "numgen random mod 100 < 50" in half
    assert "numgen" not in client_ruleset("198.18.0.2", 100)
    assert " drop\n" not in client_ruleset("198.18.0.2", 0)


def test_a_case_counts_clean_closes_and_fin_retransmits() -> None:
    r = CaseResult("no_time_wait", 20, 0, 0, 20, 20, 40, 20, 0, 5, 0.3)
    assert (r.fin_retransmits, r.clean_closes) == (20, 0)
    assert r.to_json()["server_fin_retransmits"] == 20


def test_a_case_names_what_made_its_connections_fail() -> None:
    r = CaseResult("tw_reuse", 19, 1, 0, 19, 19, 29, 9, 0, 10, 0.2,
                   connect_errors={"connect: EADDRNOTAVAIL": 1})  # fmt: skip
    assert r.to_json()["connect_errors"] == {"connect: EADDRNOTAVAIL": 1}
    assert "; 1 connection failed (1 connect: EADDRNOTAVAIL)" in case_finding(r, 100).text
    clean = CaseResult("tw_reuse", 20, 0, 0, 20, 20, 30, 10, 0, 10, 0.2)
    assert "failed" not in case_finding(clean, 100).text


def test_the_remedies_preset_is_one_cell_per_remedy_labelled_by_what_it_sets() -> None:
    labels = [c.label for c in expand(preset("remedies").factors)]
    assert labels == [
        "tcp_tw_reuse=0", "ip_local_port_range=40000-41999", "tcp_tw_reuse=1",
        "tcp_tw_reuse=1 tcp_tw_reuse_delay=100", "close=server", "close=rst",
        "sink_ports=2", "source=198.18.1.0/30",
    ]  # fmt: skip
    assert [c.label for c in expand([parse_vary("remedy=rst-close,default")])] == [
        "close=rst", "tcp_tw_reuse=0"]  # fmt: skip
    with pytest.raises(UsageError, match="'faster' is unknown"):
        parse_vary("remedy=faster")
    with pytest.raises(UsageError, match="sets close, which --vary close varies"):
        check_factors([parse_vary("remedy=rst-close"), parse_vary("close=client,rst")], 1)
