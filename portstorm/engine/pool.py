"""Several driver processes for one run: start them, deal out the load, merge what they measure.

Containing the fan-out and the merge; the load itself is driver.py, the worker's side of the
protocol worker_main.py, how a child is started and ended processes.py. Why processes: one
Python process churns about 25,000 connections/s on a 2-core machine, most of it inside
connect() and close() (benchmarks/README.md); a second process puts the second core to
work. Threads would share one interpreter lock.

Each worker is ``python -m portstorm.engine.worker_main``, started by processes.spawn() (its
own session, PR_SET_PDEATHSIG, forked from this event loop's thread) in this process's
network namespace (the client's). One line each way:

- stdin: the job (base64 pickle of scenario, flows, share: the same program on both ends),
  then ``go T0_NS``: every worker starts its load at the same perf_counter_ns() instant
  (CLOCK_MONOTONIC, one clock for every process), so record k of every worker covers the
  same stretch of time (load.tick's schedule: the ramp's 100 ms ticks through the first
  second, then the interval's), and this process samples the port space at the same ticks.
- stdout: ``ready``, then one JSON object per interval ``{"k", "interval",
  "first_failure"}`` with what changed per flow (flows.FlowCounts), then ``{"done": ...}``.
- SIGTERM (by PID) stops a worker early; it still reports what it measured. One that has
  not reported within STOP_GRACE_S is killed, and the run keeps what it had sent: a stopped
  run ends within 2 s whatever a worker is doing.

Merging is exact: counts add, histograms add (HdrHistogram: connect latency, and the
transactions of a run with a request/response), the first failure is the earliest.
Open-loop starts are dealt round-robin (worker k of n takes starts k, k + n, ...), so the
merged schedule is the single-process one.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from time import perf_counter_ns
from typing import IO, Any

import trio

from portstorm.core.errors import EnvironmentProblem
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.result import Interval, merge_intervals
from portstorm.core.scenario import Scenario
from portstorm.engine.delivery import Records
from portstorm.engine.flows import Flow, FlowCounts
from portstorm.engine.load import DriverReport, Share, take_sample, tick, with_sample
from portstorm.engine.processes import spawn
from portstorm.engine.sampler import Sample

START_TIMEOUT_S = 60.0  # importing trio and portstorm, on a machine already busy
GO_MARGIN_NS = 20_000_000  # "go" reaches every worker before t0
STOP_TIMEOUT_S = 10.0  # at the run's end, a worker reports within this, or is killed
STOP_GRACE_S = 1.0  # after stop() (a signal): what is left of the promised 2 s, after saving


def effective_workers(scenario: Scenario, workers: int) -> int:
    """No more workers than in-flight slots: each worker needs at least one."""
    cap = scenario.in_flight_cap
    return max(1, min(workers, cap)) if cap else workers


class _Lines:
    """Lines from a pipe, read on the event loop."""

    def __init__(self, fd: int) -> None:
        self._stream = trio.lowlevel.FdStream(fd)
        self._buf = bytearray()

    async def readline(self) -> bytes | None:
        """The next whole line without its newline; None at end of file. A last line
        without its newline was cut short (the worker died writing it) and is dropped."""
        while (end := self._buf.find(b"\n")) < 0:
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                return None
            self._buf += chunk
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        return line

    async def aclose(self) -> None:
        await self._stream.aclose()


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: _Lines | None = None
        self.stdin_fd = -1
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in _end_workers)
        self.done: dict[str, Any] | None = None  # its last report
        self.ended = False  # no more lines will come (done, or the process died)
        self.first_failure: tuple[float, str] | None = None

    def start(self, job: bytes) -> None:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            self.proc = spawn(
                [sys.executable, "-P", "-m", "portstorm.engine.worker_main"],
                stdin=in_r,
                stdout=out_w,
                stderr=self.stderr,
            )
        finally:
            os.close(in_r)
            os.close(out_w)
        self.stdin_fd = in_w
        self.lines = _Lines(out_r)
        self.send(job)

    def send(self, data: bytes) -> None:
        os.write(self.stdin_fd, data)  # a few KiB at most: the pipe takes it whole

    def close_stdin(self) -> None:
        if self.stdin_fd >= 0:
            os.close(self.stdin_fd)
            self.stdin_fd = -1

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    def why_ended(self) -> str:
        """What a worker that ended early said last (stderr), or its exit status."""
        status = self.proc.poll() if self.proc is not None else None
        self.stderr.seek(0)
        err = self.stderr.read().decode(errors="replace").strip().splitlines()
        return f"driver worker {self.index} " + (
            err[-1] if err else f"ended with exit status {status}"
        )

    def fd_count(self) -> int:
        if self.proc is None:
            return 0
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return 0


class DriverPool:
    """``Driver``'s interface over ``workers`` processes: ``await pool.run()`` returns one
    merged DriverReport; ``stop()`` ends the run early; ``first_failure`` is the earliest."""

    def __init__(
        self,
        scenario: Scenario,
        flows: list[Flow],
        workers: int,
        on_interval: Callable[[Interval], None] | None = None,
        sample: Callable[[], Sample] | None = None,
        start_ns: int | None = None,
    ) -> None:
        if not flows:
            raise ValueError("the driver needs at least one flow")
        self._start_ns = start_ns  # --start-at (fleetstart.py): the workers' go, if given
        self.scenario = scenario
        self.flows = flows
        self.n = effective_workers(scenario, workers)
        self._sample = sample
        self._workers = [_Worker(i) for i in range(self.n)]
        self._parts: dict[int, list[Interval | None]] = {}
        self._samples: dict[int, Sample | None] = {}
        self._next_k = 0
        self._emitted_end = 0.0  # seconds into the load: where the last merged record ended
        self._counts = FlowCounts(len(flows))  # summed from the workers' interval messages
        self._report = DriverReport()
        # the merged records, by tick, through the ramp's fold (the workers send theirs raw)
        self._records = Records(self._report, on_interval, scenario.interval_s)
        self._t0 = 0
        self._stopped = False
        self._stop_event = trio.Event()

    @property
    def first_failure(self) -> tuple[float, str] | None:
        found = [w.first_failure for w in self._workers if w.first_failure is not None]
        return min(found) if found else None

    def stop(self) -> None:
        self._report.interrupted = True
        self._stopped = True
        self._stop_event.set()
        for w in self._workers:
            w.signal(signal.SIGTERM)

    async def run(self) -> DriverReport:
        try:
            await self._start()
            if not self._stopped:
                async with trio.open_nursery() as nursery:
                    step_ns = int(self.scenario.interval_s * 1e9)
                    nursery.start_soon(tick, self._t0, step_ns, self._tick)
                    with trio.CancelScope() as reading:
                        nursery.start_soon(self._stop_reading_after_grace, reading)
                        async with trio.open_nursery() as readers:
                            for w in self._workers:
                                readers.start_soon(self._read, w)
                    nursery.cancel_scope.cancel()
            self._emit_rest(await self._take_sample())
            self._records.end()
        finally:
            with trio.CancelScope(shield=True):
                await self._end_workers()
        return self._finish()

    # -- start and end -----------------------------------------------------------------

    async def _start(self) -> None:
        for w in self._workers:
            job = (self.scenario, self.flows, Share(w.index, self.n))
            w.start(base64.b64encode(pickle.dumps(job)) + b"\n")
        failed: _Worker | None = None
        with trio.move_on_after(START_TIMEOUT_S) as cs:
            # a signal while the workers start (imports take a second on a busy machine)
            # ends the wait at once: the run is over before its load began
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._cancel_when_stopped, nursery.cancel_scope)
                for w in self._workers:
                    assert w.lines is not None
                    if await w.lines.readline() != b"ready":
                        failed = w
                        break
                nursery.cancel_scope.cancel()
        if self._stopped:
            return  # a worker our SIGTERM ended before it could say ready is no problem
        if failed is not None:
            raise EnvironmentProblem(f"{failed.why_ended()} (while starting)")
        if cs.cancelled_caught:
            raise EnvironmentProblem(
                f"the driver workers did not start within {START_TIMEOUT_S:g} s"
            )
        self._t0 = perf_counter_ns() + GO_MARGIN_NS
        if self._start_ns is not None:  # --start-at: the agreed instant, unless it passed
            if self._start_ns < self._t0:
                late = (self._t0 - self._start_ns) / 1e9
                raise EnvironmentProblem(
                    f"--start-at passed while the driver workers started ({late:.3f} s "
                    "late): give more lead time, nothing was measured"
                )
            self._t0 = self._start_ns
        for w in self._workers:
            w.send(f"go {self._t0}\n".encode())
            w.close_stdin()

    async def _cancel_when_stopped(self, scope: trio.CancelScope) -> None:
        await self._stop_event.wait()
        scope.cancel()

    async def _stop_reading_after_grace(self, reading: trio.CancelScope) -> None:
        """Once stopped, wait STOP_GRACE_S for the workers' last reports, then stop reading:
        a worker that is stuck (a full pipe, a kernel call that does not return) must not
        hold the run past the 2 s a signal promises. What it sent so far is kept."""
        await self._stop_event.wait()
        await trio.sleep(STOP_GRACE_S)
        reading.cancel()

    async def _end_workers(self) -> None:
        """Every worker process ends here: asked (SIGTERM), then told (SIGKILL)."""
        # stopped, the workers were asked at stop() and had their grace: no second wait
        deadline = trio.current_time() + (0.1 if self._stopped else STOP_TIMEOUT_S)
        for w in self._workers:
            w.close_stdin()
            if w.proc is None:
                continue
            if w.done is None:
                w.signal(signal.SIGTERM)
            proc = w.proc
            with trio.move_on_at(deadline):
                while proc.poll() is None:
                    await trio.sleep(0.01)
            if proc.poll() is None:
                w.signal(signal.SIGKILL)
                await trio.to_thread.run_sync(proc.wait)
            if w.lines is not None:
                await w.lines.aclose()
            w.stderr.close()

    # -- intervals ---------------------------------------------------------------------

    async def _read(self, w: _Worker) -> None:
        assert w.lines is not None
        while (line := await w.lines.readline()) is not None:
            msg = json.loads(line)
            if "done" in msg:
                w.done = msg["done"]
                w.ended = True
                self._emit_ready()
                return
            ff = msg["first_failure"]
            if ff is not None and w.first_failure is None:
                w.first_failure = (float(ff[0]), str(ff[1]))
            self._counts.add_changes(msg)
            parts = self._parts.setdefault(int(msg["k"]), [None] * self.n)
            parts[w.index] = Interval.from_json(msg["interval"])
            self._emit_ready()
        # end of file without "done": the worker died; keep what the others measure
        w.ended = True
        self._report.worker_errors.append(w.why_ended())
        self._emit_ready()
        self._report.interrupted = True

    async def _tick(self, k: int) -> None:
        """The end of interval k - 1: its sample, taken here at the workers' tick."""
        self._samples[k - 1] = await self._take_sample()
        self._emit_ready()

    async def _take_sample(self) -> Sample | None:
        """As the driver does it (load.take_sample), with the workers' open fds added to
        this process's own."""
        if self._sample is None:
            return None
        sample = self._sample
        workers = self._workers

        def read() -> Sample:
            s = sample()
            return dataclasses.replace(s, fds=s.fds + sum(w.fd_count() for w in workers))

        return await take_sample(read, self._report.sample_errors)

    def _emit_rest(self, final: Sample | None) -> None:
        """Emit what is left once the workers are done; ``final`` is read now, at the end.

        The load's last record ends at the workers' final flush and takes ``final``. So
        does the record before it when this process's own tick at the planned end never
        sampled it: the workers' connects still in flight at the end made a short record
        after their tick (6 attempts in 12 ms), they were done before this process's tick
        ran (that run's ticks were 6-30 ms late: a loaded host), and that record was left
        unread (time_wait null: test_workers, once in a full suite).
        ``final``, milliseconds after its end, is the reading nearest to it. A tick that
        sampled and failed keeps its null."""
        ks = sorted(self._parts)
        unread_tail = {k for k in ks[-2:] if k not in self._samples}
        for k in ks:
            self._emit(k, self._samples.get(k, final if k in unread_tail else None))

    def _emit_ready(self) -> None:
        """Emit intervals in order while each has its sample and every running worker's part."""
        while (k := self._next_k) in self._parts and k in self._samples:
            parts = self._parts[k]
            if any(p is None and not w.ended for p, w in zip(parts, self._workers, strict=True)):
                return
            self._emit(k, self._samples[k])

    def _emit(self, k: int, sample: Sample | None) -> None:
        parts = [p for p in self._parts.pop(k) if p is not None]
        self._samples.pop(k, None)  # kept only until its interval is out
        self._next_k = k + 1
        merged = merge_intervals(parts)
        # Each worker ends its part at its own wake-up for tick k, a few ms apart, so the
        # merged spans overlapped (the end the latest part's, the next start the earliest
        # part's): the intervals tile instead, each starting where the one before ended.
        # A worker that woke late for tick k can end its part after another's part for
        # tick k + 1 began, even after all of it had ended (a loaded machine: record 5
        # starting at 0.502 s after record 4 at 0.521 s, a ramp refused as out of order
        # when the run was saved, and the run lost): so never start before the last end.
        end = merged.t + merged.dt
        if k > 0 and merged.t < self._emitted_end:
            end = max(end, self._emitted_end)
            merged = dataclasses.replace(merged, t=self._emitted_end, dt=end - self._emitted_end)
        self._emitted_end = max(self._emitted_end, end)
        interval = with_sample(merged, sample)
        self._counts.update_ports(sample)
        if interval.hdr is not None:
            self._report.histogram.add(LatencyHistogram.decode(interval.hdr))
        if interval.transaction_hdr is not None:  # request/response, HTTP: exact too
            self._report.transactions.add(LatencyHistogram.decode(interval.transaction_hdr))
        self._records.add(interval, k + 1)  # record k: ended by tick k + 1 (or the end)

    # -- the merged report -------------------------------------------------------------

    def _finish(self) -> DriverReport:
        rep = self._report
        for w in self._workers:
            d = w.done
            if d is not None:
                rep.elapsed_s = max(rep.elapsed_s, float(d["elapsed_s"]))
                rep.interrupted |= bool(d["interrupted"])
                rep.sample_errors += [str(e) for e in d["sample_errors"]]
        self._counts.fill(rep)
        if rep.elapsed_s == 0.0:
            rep.elapsed_s = max(0.0, (perf_counter_ns() - self._t0) / 1e9) if self._t0 else 0.0
        ff = self.first_failure
        if ff is not None:
            rep.first_failure_s, rep.first_failure_outcome = ff
        return rep
