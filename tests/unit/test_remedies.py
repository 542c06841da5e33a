"""core/remedies.py: every remedy has its cost in words, and a remedies sweep's cells, as
sweep.json labels them, are told back to their remedy."""

from __future__ import annotations

from portstorm.cli.sweepplan import plan_sweep
from portstorm.core.remedies import COSTS, REMEDIES, remedy_of
from portstorm.core.sweep import PRESETS
from portstorm.engine.sweep import SweepRunner


def test_every_remedy_says_what_it_costs() -> None:
    assert set(COSTS) == set(REMEDIES)
    assert all(len(c) > 20 for c in COSTS.values())


def test_the_remedies_presets_cells_are_told_back_to_their_remedy(tmp_path: object) -> None:
    preset = PRESETS["remedies"]
    plan = plan_sweep(list(preset.factors), 1, [], preset, None, 1)
    doc = SweepRunner(plan, tmp_path).doc()  # type: ignore[arg-type]
    found = [remedy_of(cell["factors"]) for cell in doc["cells"]]
    assert found == list(REMEDIES)


def test_factors_that_are_no_single_remedy_are_none() -> None:
    assert remedy_of({"tcp_tw_reuse": "2"}) is None
    assert remedy_of({"tcp_tw_reuse": "1", "close": "rst"}) is None
    assert remedy_of({"net.ipv4.tcp_tw_reuse": "1"}) == "tw-reuse"
