"""Long runs: what ``portstorm report`` and ``portstorm compare`` cost on a 1-hour and a
24-hour result, beside the short run the long ones are made of.

A long result is built from the real interval records of short runs, replicated in time
order to 3,600 and 86,400 one-second intervals: the committed example
(reports/examples/run-port-exhaustion, 75 intervals, port exhaustion, no latency in most
intervals) and a run with successes in every interval (``--successes``: a result.json of a
short ``portstorm run``; made here, in the pair sandbox, when not given), and that run again
with every histogram after its first pass resampled from its source interval's (``distinct``:
a real day's histograms are all different, a replicated day's repeat; see ``Resampler``).
Totals are exact (the run's histogram is the sum of the intervals' own histograms; the
tuples table is rebuilt from the intervals) and every histogram is a real one. The 24-hour
results carry a spike of one interval at 12 h: a burst of timeouts, and connects of 0.8 to
1.6 s in it, so the charts can be looked at for it (``--keep DIR`` keeps the files and the
reports).

``report`` and ``compare`` run in child processes (``python -m portstorm``); wall time and
peak RSS come from os.wait4() of that child. Also: the result.json sizes, the time to
write a 24-hour result.json from memory (what a run does when it ends, before its report),
and a sweep of 100 cells (the example sweep's runs, copied) reported.

    python benchmarks/long_runs.py [--successes RESULT.json] [--keep DIR] [--skip-24h]
    python benchmarks/long_runs.py --compare-again DIR [--before TREE] [--rounds 3]

``--compare-again`` times only ``compare`` of the kept days in DIR (a run with --keep made
them), round after round; with ``--before`` (a folder holding another tree's portstorm/)
each round runs that tree too, right after, so a load that moves hits both alike.

Goals (issue 22): for 86,400 intervals, result.json under 25 MB, ``report`` under 20 s and
400 MB of RSS, ``compare`` of two under 5 s; a sweep of 100 cells reports in under 30 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "reports/examples/run-port-exhaustion/result.json"
SWEEP = ROOT / "reports/examples/sweep-tw-reuse"
ENV = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH") or str(ROOT))
HOUR, DAY = 3_600, 86_400
SPIKE_FAILURES = 400  # timeouts in the spike's interval
SPIKE_SLOW = 60  # successes in it that took 0.8 to 1.6 s

from portstorm.core import result as result_module  # noqa: E402
from portstorm.core.histogram import LatencyHistogram  # noqa: E402
from portstorm.core.result import Interval, RunResult, TupleStats, load_result  # noqa: E402


def _hist(text: str | None) -> LatencyHistogram:
    return LatencyHistogram.decode(text) if text is not None else LatencyHistogram()


def _spike(base: Interval, t: float) -> tuple[Interval, LatencyHistogram]:
    """One interval with a burst of timeouts, and connects of 0.8 to 1.6 s added to its own;
    and the histogram of what was added."""
    extra = LatencyHistogram()
    extra.record_many(800_000 + k * 13_333 for k in range(SPIKE_SLOW))
    h = _hist(base.hdr)
    h.add(extra)
    failed = dict(base.failed)
    failed["timeout"] = failed.get("timeout", 0) + SPIKE_FAILURES
    iv = dataclasses.replace(
        base,
        t=t,
        attempts=base.attempts + SPIKE_SLOW + SPIKE_FAILURES,
        succeeded=base.succeeded + SPIKE_SLOW,
        failed=failed,
        latency_us={"p50": h.percentile(50.0), "p99": h.percentile(99.0)},
        hdr=h.encode(),
    )
    return iv, extra


class Resampler:
    """Histograms as distinct as a real run's: each a bootstrap sample of a source
    interval's own (as many connects, drawn from its recorded values with their
    frequencies; seeded, so a build is repeatable). A replicated day repeats its source's
    20 or 75 histograms, which the result's block deflates to almost nothing; a real day's
    86,400 are all different."""

    def __init__(self, decoded: list[LatencyHistogram], seed: int = 22) -> None:
        import numpy as np

        self._rng = np.random.default_rng(seed)
        self._src = []
        for h in decoded:
            rec = h.recorded()
            values = np.array([v for v, _ in rec], dtype=np.int64)
            counts = np.array([c for _, c in rec], dtype=np.float64)
            self._src.append((values, counts / counts.sum() if rec else counts, h.count))
        self.run = LatencyHistogram()  # the sum of every histogram made here

    def interval(self, base: Interval, j: int, t: float) -> Interval:
        values, p, n = self._src[j]
        if not n:
            return dataclasses.replace(base, t=t)
        drawn = self._rng.multinomial(n, p)
        pairs = [(int(v), int(c)) for v, c in zip(values, drawn, strict=True) if c]
        h = LatencyHistogram()
        h.record_counts(pairs)
        self.run.record_counts(pairs)
        latency = {"p50": h.percentile(50.0), "p99": h.percentile(99.0)}
        return dataclasses.replace(base, t=t, latency_us=latency, hdr=h.encode())


def build(src: RunResult, n: int, spike: bool, distinct: bool = False) -> RunResult:
    """``n`` intervals: ``src``'s, over and over, each at the end of the one before;
    ``distinct``: after the first pass, each histogram resampled (``Resampler``)."""
    ivs = src.intervals
    decoded = [_hist(i.hdr) for i in ivs]
    cycle = LatencyHistogram()
    for h in decoded:
        cycle.add(h)
    hist = LatencyHistogram()
    resampler = Resampler(decoded) if distinct else None
    if resampler is not None:  # the first pass as recorded, the rest summed as made
        for h in decoded[:n]:
            hist.add(h)
    else:
        for _ in range(n // len(ivs)):  # whole cycles at once: the same sum, one by one
            hist.add(cycle)
        for h in decoded[: n % len(ivs)]:
            hist.add(h)
    out: list[Interval] = []
    t = 0.0
    for k in range(n):
        j = k % len(ivs)
        if resampler is not None and k >= len(ivs):
            iv = resampler.interval(ivs[j], j, t)
        else:
            iv = dataclasses.replace(ivs[j], t=t)
        if spike and k == n // 2:
            iv, extra = _spike(iv, t)
            hist.add(extra)
        out.append(iv)
        t = round(t + ivs[j].dt, 6)
    first_t, first_o = src.first_failure_s, src.first_failure_outcome
    if first_t is None and spike:
        first_t, first_o = out[n // 2].t, "timeout"
    failed: Counter[str] = Counter()
    for i in out:
        failed.update(i.failed)
    tuples: tuple[TupleStats, ...] = ()
    if len(src.tuples) == 1:
        one = src.tuples[0]
        tuples = (dataclasses.replace(one, succeeded=sum(i.succeeded for i in out),
                                      failed=dict(failed), first_failure_s=first_t),)  # fmt: skip
    if resampler is not None:
        hist.add(resampler.run)
    return dataclasses.replace(
        src,
        duration_s=t,
        setup=dataclasses.replace(src.setup, duration_s=float(round(t))),
        intervals=tuple(out),
        histogram=hist,
        first_failure_s=first_t,
        first_failure_outcome=first_o,
        tuples=tuples,
        thresholds=(),
        transactions=None,
    )


def text_of(r: RunResult) -> str:
    """result.json as a run writes it: the format's own writer where there is one."""
    writer = getattr(result_module, "result_text", None)
    if writer is not None:
        return str(writer(r))
    return json.dumps(r.to_json(), indent=1) + "\n"  # core/files.py's write_json


def run_end(r: RunResult, folder: Path) -> tuple[float, float, float]:
    """What a run does once its load ends, timed (seconds): its RunResult made from the
    intervals in memory (engine/run.py: the constructor checks every interval against the
    totals), result.json written, then its report drawn from the result in memory
    (cli/runcmd.py), in run-end/."""
    from portstorm.report.build import write_run_report

    t0 = time.perf_counter()
    r = dataclasses.replace(r, notes=(*r.notes,))  # a new RunResult: __post_init__ again
    made = time.perf_counter()
    (folder / "result.json").write_text(text_of(r))
    written = time.perf_counter()
    write_run_report(r, folder / "run-end" / "report.html")
    return made - t0, written - made, time.perf_counter() - written


def timed(argv: list[str], log: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB, exit code) of one child process. It starts in the log's
    folder (``-m`` puts the working directory first on sys.path: a checkout there would
    be imported instead of PYTHONPATH's), from this small process (a child's peak RSS
    counts what it inherited at fork: the results are built in children of their own)."""
    with log.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=err, stderr=err, env=ENV, cwd=log.parent)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode


def portstorm(*args: str) -> list[str]:
    return [sys.executable, "-m", "portstorm", *args]


def successes_run(work: Path) -> Path:
    out = work / "successes"
    cmd = portstorm("run", "--duration", "20", "--rate", "400", "--no-report", "--quiet",
                    "--out", str(out))  # fmt: skip
    print(f"making a run with successes in every interval: {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, check=True, env=ENV, stdout=subprocess.DEVNULL)
    return out / "result.json"


def sweep_of(cells: int, work: Path) -> Path:
    """A sweep.json of ``cells`` cells, each a copy of one of the example sweep's runs."""
    doc = json.loads((SWEEP / "sweep.json").read_text())
    base = doc["cells"]
    doc["factors"].append({"name": "net.ipv4.tcp_fin_timeout", "label": "tcp_fin_timeout",
                           "kind": "client", "values": []})  # fmt: skip
    new = []
    for k in range(cells):
        cell = json.loads(json.dumps(base[k % len(base)]))
        fin = str(k // len(base) + 1)
        doc["factors"][-1]["values"] = sorted({*doc["factors"][-1]["values"], fin}, key=int)
        cell["id"] = f"{k + 1:03d}-{cell['id'].split('-', 1)[1]},fin={fin}"
        cell["label"] += f" tcp_fin_timeout={fin}"
        cell["factors"]["tcp_fin_timeout"] = fin
        for run in cell["runs"]:
            src = SWEEP / run["path"]
            run["path"] = f"cells/{cell['id']}/r1/result.json"
            (work / run["path"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, work / run["path"])
        new.append(cell)
    doc["cells"] = new
    (work / "sweep.json").write_text(json.dumps(doc, indent=1))
    return work / "sweep.json"


def compare_again(work: Path, before: Path | None, rounds: int) -> None:
    """Compare of each kept pair of days, ``rounds`` times (this tree, then ``before``'s):
    each run's wall and CPU time and peak RSS, then the medians and after/before."""
    trees = {"after": ENV} | ({"before": dict(ENV, PYTHONPATH=str(before))} if before else {})
    got: dict[tuple[str, str], list[tuple[float, float]]] = {}
    names = [n for n in ("example", "successes", "distinct") if (work / f"{n}-{DAY}").is_dir()]
    for k in range(rounds):
        for name in names:
            pair = [str(work / f"{name}-{DAY}{b}/result.json") for b in ("", "-b")]
            for tree, env in trees.items():
                log = work / f"{name}-{DAY}/compare-{tree}.log"
                with log.open("wb") as err:
                    t0 = time.perf_counter()
                    proc = subprocess.Popen(portstorm("compare", *pair, "--json"), stdout=err,
                                            stderr=err, env=env, cwd=log.parent)  # fmt: skip
                    _pid, status, usage = os.wait4(proc.pid, 0)
                    wall = time.perf_counter() - t0
                code = os.waitstatus_to_exitcode(status)
                cpu = usage.ru_utime + usage.ru_stime  # less moved by others' load than wall
                got.setdefault((name, tree), []).append((wall, cpu, usage.ru_maxrss / 1024))
                print(f"round {k + 1} {name:>9} {tree:>6}: compare {wall:6.2f} s "
                      f"(CPU {cpu:5.2f} s) {usage.ru_maxrss / 1024:5.0f} MB (exit {code})",
                      flush=True)  # fmt: skip
    for name in names:
        med = {t: statistics.median(w for w, _c, _r in got[(name, t)]) for t in trees}
        cpu = {t: statistics.median(c for _w, c, _r in got[(name, t)]) for t in trees}
        rss = {t: max(r for _w, _c, r in got[(name, t)]) for t in trees}
        line = "  ".join(f"{t} {med[t]:5.2f} s (CPU {cpu[t]:5.2f} s) {rss[t]:3.0f} MB"
                         for t in trees)  # fmt: skip
        ratio = (f"  after/before {med['after'] / med['before']:.2f}"
                 f" (CPU {cpu['after'] / cpu['before']:.2f})") if before else ""  # fmt: skip
        print(f"median of {rounds}, {name:>9} days: {line}{ratio}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--successes", type=Path, help="a short run's result.json (else made here)")
    ap.add_argument("--keep", type=Path, help="keep the results and reports in this folder")
    ap.add_argument("--skip-24h", action="store_true", help="1 hour only (quick)")
    ap.add_argument("--build", nargs=3, metavar=("SOURCE", "N", "DIR"), help=argparse.SUPPRESS)
    ap.add_argument("--distinct", action="store_true", help=argparse.SUPPRESS)  # with --build
    ap.add_argument("--compare-again", type=Path, metavar="DIR",
                    help="time compare of the days kept in DIR only")  # fmt: skip
    ap.add_argument("--before", type=Path, help="with --compare-again: a tree to time beside")
    ap.add_argument("--rounds", type=int, default=3, help="with --compare-again (3)")
    args = ap.parse_args()
    if args.compare_again:
        loads = os.getloadavg()
        compare_again(args.compare_again, args.before, args.rounds)
        print(f"(load average {loads[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end)")
        return 0
    if args.build:  # a child: build one result, then end it as a run ends (below)
        source, n, folder = Path(args.build[0]), int(args.build[1]), Path(args.build[2])
        built = build(load_result(source), n, spike=n == DAY, distinct=args.distinct)
        print(" ".join(f"{s:.3f}" for s in run_end(built, folder)))
        return 0
    loads = os.getloadavg()  # the machine's, said with the figures: compare them as ratios
    work = args.keep or Path(tempfile.mkdtemp(prefix="portstorm-long-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        successes = args.successes or successes_run(work)
        # name -> (short run, histograms resampled): "distinct" is the run with successes
        # with every interval's histogram its own, as in a real day (its size, its block)
        sources = {"example": (EXAMPLE, False), "successes": (successes, False),
                   "distinct": (successes, True)}  # fmt: skip
        (work / "ex").mkdir(exist_ok=True)
        base, rss, rc = timed(portstorm("report", str(EXAMPLE), "-o", str(work / "ex/report.html")),
                              work / "ex/report.log")  # fmt: skip
        print(f"\n75-interval example: report {base:.2f} s, {rss:.0f} MB peak RSS (exit {rc})")
        lengths = [HOUR] if args.skip_24h else [HOUR, DAY]
        for name, (path, distinct) in sources.items():
            for n in lengths:
                folder = work / f"{name}-{n}"
                folder.mkdir(exist_ok=True)
                made = subprocess.run(
                    [sys.executable, __file__, "--build", str(path), str(n), str(folder),
                     *(["--distinct"] if distinct else [])],
                    env=ENV, cwd=folder, check=True, capture_output=True, text=True,
                )  # fmt: skip
                made_s, write_s, end_s = (float(v) for v in made.stdout.split()[-3:])
                size = (folder / "result.json").stat().st_size
                twin = work / f"{name}-{n}-b"
                twin.mkdir(exist_ok=True)
                shutil.copy(folder / "result.json", twin / "result.json")
                rep = timed(portstorm("report", str(folder / "result.json")), folder / "report.log")
                pair = (str(folder / "result.json"), str(twin / "result.json"))
                cmp_ = timed(portstorm("compare", *pair), folder / "compare.log")
                print(f"{name:>9} {n:>6,} intervals: result.json {size / 1e6:6.1f} MB"
                      f" ({size / n:,.0f} B/interval)\n"
                      f"{'':>27}run end: made {made_s:5.2f} s + written {write_s:5.2f} s"
                      f" + report {end_s:6.2f} s = {made_s + write_s + end_s:6.2f} s\n"
                      f"{'':>27}portstorm report {rep[0]:6.2f} s {rep[1]:6.0f} MB (exit {rep[2]});"
                      f" compare {cmp_[0]:6.2f} s {cmp_[1]:5.0f} MB (exit {cmp_[2]})",
                      flush=True)  # fmt: skip
        sweep = sweep_of(100, work / "sweep100")
        wall, rss, rc = timed(portstorm("report", str(sweep)), work / "sweep100/report.log")
        print(f"sweep of 100 cells: report {wall:.2f} s, {rss:.0f} MB peak RSS (exit {rc})")
        print(
            f"\n(beside the 75-interval example's report: {base:.2f} s; load average"
            f" {loads[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end)"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
