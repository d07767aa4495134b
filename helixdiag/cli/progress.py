"""Progress of long work, drawn by `Terminal.progress` (only for a person at a terminal, and
gone when the work is done): what a run waits on, the frames `send` has exchanged, the bytes
`logs` has scanned."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from helixdiag import runner
from helixdiag.cli.counting import FrameCount
from helixdiag.terminal import text_column


def waiting_on(state: runner.RunState) -> str:
    """`waiting on stream.exchange · 3.2 s of 17 s · 2 more running`."""
    if not state.running:
        return "looking at the machine…"
    first = state.running[0]
    more = len(state.running) - 1
    return (f"waiting on {first.id} · {first.elapsed:.1f} s of {first.limit:.0f} s"
            + (f" · {more} more running" if more else ""))


@contextlib.contextmanager
def probing(terminal, label: str = "") -> Iterator[None]:
    """While the body runs probes (any `runner.Runner.run`, also the self-test's): the probe
    waited on longest, how long it has run and may run, and how many probes are done."""
    prefix = f"{label}: " if label else ""
    with terminal.progress(SpinnerColumn(), BarColumn(bar_width=10), MofNCompleteColumn(), text_column()) as display:
        task = display.add_task(prefix + "starting…", total=None)

        def show(state: runner.RunState) -> None:
            display.update(task, description=prefix + waiting_on(state), total=state.total,
                           completed=state.done)

        with runner.watching(show):
            yield


@contextlib.contextmanager
def sending(terminal, count: FrameCount, *, mode: str, frames: int | None,
            duration: float | None) -> Iterator[None]:
    """While the body exchanges frames: sent and received so far (of --frames), the rate, and
    the time (of --duration)."""
    with terminal.progress(SpinnerColumn(), BarColumn(bar_width=20), TimeElapsedColumn(), text_column()) as display:
        task = display.add_task("connecting…", total=frames or duration)

        def show(c: FrameCount) -> None:
            done = c.received if mode == "scanout" else c.sent
            of = f"/{frames}" if frames else ""
            figures = f"{c.received}{of} received" if mode == "scanout" else \
                f"{c.sent}{of} sent · {c.received} received"
            display.update(task, description=f"{figures} · {c.rate:.1f} frames/s",
                           completed=done if frames else min(c.elapsed, duration or 0.0))

        count.changed = show
        try:
            yield
        finally:
            count.changed = FrameCount.ignore


@contextlib.contextmanager
def scanning(terminal, name: str, size: int | None) -> Iterator[Callable[[int], None]]:
    """While the body reads a log: the bytes read (of its size), the rate and the time left.
    Yields the function to call with the bytes of each read."""
    with terminal.progress(SpinnerColumn(), BarColumn(bar_width=20), DownloadColumn(), TransferSpeedColumn(),
                           TimeRemainingColumn(), text_column()) as display:
        task = display.add_task(f"scanning {os.path.basename(name)}", total=size)
        yield lambda n: display.advance(task, n)
