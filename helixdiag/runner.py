"""Runs probes concurrently under per-probe timeouts and one overall deadline.

A probe waits for the probes it `needs`; if one of them failed it is `blocked` without
running. Probes that talk HXFR take one lock, because some real hosts serve one client at
a time (docs/protocol.md) and two probes must not trip over each other. A probe that
raises becomes `error` with its message; a probe that overruns becomes `error` too, and the
run goes on without it (its thread ends by itself: every wait in it is bounded).

A progress display can follow a run (`watching`): while probes run, it is told at least every
`WATCH_PERIOD` seconds which probes run, for how long each has and may, and how many are done.
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import threading
import time
import traceback
import typing
from collections.abc import Iterator
from dataclasses import dataclass

from helixdiag import failures, graph
from helixdiag.config import RunConfig
from helixdiag.errors import UsageError
from helixdiag.layers import LAYER_NAMES, Side, layer
from helixdiag.observe.facts import Observations
from helixdiag.probes import ProbeSpec, all_probes, scanout_path
from helixdiag.probes.context import ProbeContext
from helixdiag.report.model import Report, environment
from helixdiag.results import Outcome, ProbeResult, Status, blocked, skipped

Progress = typing.Callable[[ProbeResult], None]  # evaluated at import: typing for Python 3.8 (guest agent)
MAX_CONCURRENT_PROBES = 6
WATCH_PERIOD = 0.25  # seconds between calls of a watcher while probes run


@dataclass(frozen=True)
class RunningProbe:
    """A probe that runs now: how long it has run, and how long it may (its timeout, or what
    was left of the run's deadline when it started, whichever is shorter), in seconds."""

    id: str
    elapsed: float
    limit: float


@dataclass(frozen=True)
class RunState:
    """What a run waits on: the probes running (the longest-running first), how many of the
    selected probes are settled, and how many there are."""

    running: tuple[RunningProbe, ...]
    done: int
    total: int


Watcher = typing.Callable[[RunState], None]
_watcher: contextvars.ContextVar[Watcher | None] = contextvars.ContextVar("run_watcher", default=None)


@contextlib.contextmanager
def watching(watcher: Watcher) -> Iterator[None]:
    """Every run started in this context — also one a library function starts, such as the
    self-test's — tells `watcher` what it waits on (from the thread that runs it)."""
    token = _watcher.set(watcher)
    try:
        yield
    finally:
        _watcher.reset(token)


def select(names: list[str], run_all: bool) -> list[ProbeSpec]:
    """Probes named by id or layer (or every probe with --all)."""
    probes = all_probes()
    if run_all or not names:
        return probes
    chosen: list[ProbeSpec] = []
    for name in names:
        matches = [p for p in probes if p.id == name or p.layer == name]
        if not matches:
            import difflib

            known = [p.id for p in probes] + list(LAYER_NAMES)
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; `helixdiag list` shows them"
            raise UsageError(f"no probe or layer named {name!r}{hint}")
        chosen += [m for m in matches if m not in chosen]
    return chosen


def side_applies(spec: ProbeSpec, side: str) -> str | None:
    """None when the probe runs on this side, else the reason it does not."""
    if side == "both" or spec.side == Side.EITHER or spec.side == side:
        return None
    return f"runs on the {spec.side} side; this run is --side {side}"


class Runner:
    def __init__(self, config: RunConfig, probes: list[ProbeSpec], *, explicit: set[str] | None = None,
                 progress: Progress | None = None, observations: Observations | None = None) -> None:
        self.config = config
        self.probes = probes
        self.explicit = explicit or set()  # probe ids/layers named on the command line
        self.progress = progress
        # Facts are gathered afresh per run unless the caller already holds this moment's.
        self.ctx = ProbeContext(config, obs=observations or Observations(), explicit=self.explicit)
        self._talk_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_PROBES)
        self._watcher: Watcher | None = None

    def probe_timeout(self, spec: ProbeSpec) -> float:
        if spec.timeout is not None:
            return spec.timeout
        # A talking probe may wait for the lock behind others, then for several replies.
        return self.config.timeout * (4 if spec.talks else 2) + 5.0

    def run(self) -> Report:
        self._watcher = _watcher.get()
        started_wall = time.time()
        started = time.monotonic()
        deadline = started + self.config.deadline
        env_box: dict[str, object] = {}
        env_thread = threading.Thread(target=lambda: env_box.update(environment(self.config.side, self.ctx.obs.tool_versions())), daemon=True)
        env_thread.start()
        self._tell_watcher({}, deadline)
        _ = self.ctx.topology  # discover once, before probes race for it

        pending = {p.id: p for p in self.probes}
        selected_ids = set(pending)
        running: dict[str, tuple[ProbeSpec, float]] = {}
        finished: queue.Queue[tuple[str, Outcome]] = queue.Queue()
        while pending or running:
            self._start_ready(pending, selected_ids, running, finished)
            if not running:
                # Every probe whose needs were settled has been started or recorded, so
                # what is left waits on a cycle of needs (a registration bug).
                for spec in pending.values():
                    self._record(spec, Outcome(Status.ERROR, "not run: its needs form a cycle "
                                               f"({', '.join(spec.needs)})"), 0.0)
                pending.clear()
                continue
            self._tell_watcher(running, deadline)
            now = time.monotonic()
            wait_for = min(min(t0 + self.probe_timeout(s) for s, t0 in running.values()), deadline) - now
            if self._watcher is not None:
                wait_for = min(wait_for, WATCH_PERIOD)
            try:
                done = [finished.get(timeout=max(wait_for, 0.01))]
                while not finished.empty():
                    done.append(finished.get_nowait())
            except queue.Empty:
                done = []
            for probe_id, outcome in done:
                if probe_id in running:  # not already given up on
                    spec, t0 = running.pop(probe_id)
                    self._record(spec, outcome, time.monotonic() - t0)
            now = time.monotonic()
            for probe_id, (spec, t0) in list(running.items()):
                limit = self.probe_timeout(spec)
                if now - t0 >= limit or now >= deadline:
                    running.pop(probe_id)
                    why = (f"timed out after {limit:g} s" if now - t0 >= limit
                           else f"the run's {self.config.deadline:g} s deadline passed")
                    self._record(spec, Outcome(Status.ERROR, f"probe {why}"), now - t0)
            if now >= deadline:
                for spec in pending.values():
                    self._record(spec, Outcome(Status.ERROR, "not run: the run's deadline passed"), 0.0)
                pending.clear()
        env_thread.join(timeout=max(0.0, deadline - time.monotonic()))
        ordered = [self.ctx.results[p.id] for p in self.probes if p.id in self.ctx.results]
        topo = self.ctx.topology
        diagnosis = graph.diagnose(ordered, topo.kind)
        return Report(
            started_at=started_wall,
            duration_ms=int((time.monotonic() - started) * 1000),
            environment=env_box or {"side": self.config.side},  # type: ignore[arg-type]
            config=self.config.public(),
            probes=ordered,
            diagnosis=diagnosis,
            topology=topo.describe(),
            raw_outputs=self.ctx.obs.raw_outputs(),
        )

    def _tell_watcher(self, running: dict[str, tuple[ProbeSpec, float]], deadline: float) -> None:
        if self._watcher is None:
            return
        now = time.monotonic()
        probes = tuple(RunningProbe(spec.id, now - t0, min(self.probe_timeout(spec), deadline - t0))
                       for spec, t0 in sorted(running.values(), key=lambda item: item[1]))
        self._watcher(RunState(probes, sum(1 for p in self.probes if p.id in self.ctx.results),
                               len(self.probes)))

    def _start_ready(self, pending: dict[str, ProbeSpec], selected_ids: set[str],
                     running: dict[str, tuple[ProbeSpec, float]], finished: queue.Queue) -> None:
        """Start (or settle at once) every pending probe whose needs are all settled, until
        no more can be: a probe settled early (skipped, blocked) may settle another's needs."""
        progressed = True
        while progressed:
            progressed = False
            for spec in list(pending.values()):
                needs = [n for n in spec.needs if n in selected_ids]
                if any(n not in self.ctx.results for n in needs):
                    continue
                del pending[spec.id]
                progressed = True
                early = self._precheck(spec, needs)
                if early is not None:
                    self._record(spec, early, 0.0)
                    continue
                running[spec.id] = (spec, time.monotonic())
                # Daemon threads: a probe stuck past its timeout (or a Ctrl-C) never holds the
                # process open; every wait inside a probe is bounded, so the thread ends anyway.
                threading.Thread(target=self._execute, args=(spec, finished), name=f"probe {spec.id}",
                                 daemon=True).start()

    def _precheck(self, spec: ProbeSpec, needs: list[str]) -> Outcome | None:
        reason = side_applies(spec, self.config.side) or \
            scanout_path.not_on_path(self.ctx, spec.path or layer(spec.layer).path)
        if reason:
            return skipped(reason)
        for need in needs:
            r = self.ctx.results[need]
            if r.status in (Status.FAIL, Status.ERROR, Status.BLOCKED):
                detail = f" ({r.failure_id})" if r.failure_id else ""
                return blocked(f"needs {need}, which is {r.status}{detail}", needs=need)
        return None

    def _execute(self, spec: ProbeSpec, finished: queue.Queue) -> None:
        with self._slots:
            finished.put((spec.id, self._outcome(spec)))

    def _outcome(self, spec: ProbeSpec) -> Outcome:
        try:
            if spec.talks:
                with self._talk_lock:
                    return spec.func(self.ctx)
            return spec.func(self.ctx)
        except Exception as exc:  # noqa: BLE001 - a probe crash is a result, never a crashed run
            tb = traceback.extract_tb(exc.__traceback__)
            where = f"{tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else "?"
            return Outcome(Status.ERROR, f"probe crashed: {type(exc).__name__}: {exc}",
                           evidence={"where": where})

    def _record(self, spec: ProbeSpec, outcome: Outcome, seconds: float) -> None:
        remedy = outcome.remedy
        if remedy is None and outcome.failure_id and outcome.status in (Status.FAIL, Status.WARN):
            remedy = failures.get(outcome.failure_id).remedy
        result = ProbeResult(
            id=spec.id, layer=spec.layer, side=str(spec.side), status=outcome.status,
            summary=outcome.summary, failure_id=outcome.failure_id if outcome.status in (Status.FAIL, Status.WARN) else None,
            evidence=outcome.evidence, remedy=remedy, duration_ms=int(seconds * 1000),
        )
        self.ctx.results[spec.id] = result
        if self.progress is not None:
            self.progress(result)
