"""`helixdiag watch` in a real terminal (tmux): a layer breaks and is repaired during the watch."""

from __future__ import annotations

import json
import re
import shlex
import sys
import time

import pytest
from conftest import run_cli
from tmux_term import Tmux, wait_for

from helixdiag import selftest
from helixdiag.config import RunConfig
from helixdiag.layers import LAYERS, VideoPath
from helixdiag.watch import Watcher

pytestmark = pytest.mark.timeout(120)


WATCH = [sys.executable, "-m", "helixdiag", "watch", "--side", "both", "--host", "127.0.0.1", "--timeout", "1"]
STREAM_WORDS = ("closed", "no socket", "refused", "reset", "timeout", "no reply")


def stack_args(stack) -> list[str]:
    return ["--port", str(stack.port), "--socket", stack.socket_path]


def row(screen: str, label: str) -> str:
    return next((line for line in screen.splitlines() if line.startswith(label + " ")), "")


def assert_fits(screen: str) -> None:
    """Nothing collapsed to rich's `...` for a view taller than the terminal."""
    assert not [line for line in screen.splitlines() if line.strip() in ("...", "…")], screen


def assert_cut_with_ellipsis(screen: str, initial: list[dict]) -> None:
    """Each layer's text is shown whole, or cut with an ellipsis — never cut mid-word silently."""
    for ev in initial:
        line = row(screen, ev["layer"])
        expected = (f"{ev['failure_id']} " if ev["failure_id"] else "") + ev["summary"]
        at = line.find(expected[:12])
        assert at > 0, (ev, line)
        shown = line[at:].rstrip()
        assert shown == expected or (shown.endswith("…") and expected.startswith(shown[:-1])), (shown, expected)


@pytest.mark.parametrize(("width", "height"), [(80, 24), (80, 20)])
def test_watch_shows_a_break_and_a_repair_under_tmux(tmp_path, width, height):
    jsonl = tmp_path / "changes.jsonl"
    stack = selftest.Stack()
    try:
        stack.start_serve()
        stack.start_socat()
        cmd = [*WATCH, *stack_args(stack), "--interval", "1", "--jsonl", str(jsonl)]
        with Tmux(width, height, f"{shlex.join(cmd)}; sleep 60") as term:
            screen = term.wait(lambda s: "round 3" in s and " ms " in row(s, "host endpoint")
                               and " ms " in row(s, "guest path"), 30)
            assert screen, term.screen()
            assert_fits(screen)
            assert f"tcp://127.0.0.1:{stack.port}" in row(screen, "guest path"), screen  # the port shows
            assert row(screen, "host endpoint").endswith("helix-frame-export.sock"), screen
            assert "changes: none yet" in screen  # first observations are not changes
            initial = [json.loads(line) for line in jsonl.read_text().splitlines()]
            # The scanout path's guest layers, skipped on this request-path stack, take no row.
            hidden = {layer.name for layer in LAYERS if layer.path == VideoPath.SCANOUT}
            assert not any(line.split(" ", 1)[0] in hidden for line in screen.splitlines()), screen
            assert_cut_with_ellipsis(screen, [e for e in initial if "hop" not in e and e["layer"] not in hidden])

            stack.server.stop()  # break: serve goes away and takes its socket with it
            stack.server = None
            broken = term.wait(lambda s: "socket-missing" in row(s, "unix-socket")
                               and "stream host endpoint: flowing → " in s
                               and any(w in row(s, "host endpoint") for w in STREAM_WORDS), 20)
            assert broken, term.screen()
            assert_fits(broken)
            assert "Error" not in row(broken, "host endpoint"), broken  # a word, not an exception

            stack.start_serve()  # repair
            repaired = term.wait(lambda s: "✔ pass" in row(s, "unix-socket") and " ms " in row(s, "host endpoint"), 20)
            assert repaired, term.screen()

            term.keys("C-c")
            summary = term.wait(lambda s: "watched" in s, 15)
            assert summary and "Traceback" not in summary and "crashed" not in summary, term.screen()
    finally:
        stack.close()
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    socket_events = [(e["from"], e["to"], e["failure_id"]) for e in events if e["layer"] == "unix-socket"]
    assert socket_events[0] == (None, "pass", None)  # the initial state…
    assert ("pass", "fail", "socket-missing") in socket_events  # …then the changes
    assert ("fail", "pass", None) in socket_events
    host = [e for e in events if e.get("hop") == "host endpoint"]
    assert host[0]["from"] is None and host[0]["to"] == "flowing"
    down = next(e for e in host if e["from"] == "flowing")
    assert down["to"] in STREAM_WORDS and down["summary"], down  # the detail is kept here
    assert all(e["time"].endswith("Z") for e in events)
    changes = sum(1 for e in events if e["from"] is not None)
    assert re.search(rf"watched \d+ s, \d+ rounds, {changes} changes", summary), summary


def test_watch_without_a_terminal_prints_initial_states_apart_from_changes():
    stack, _ = selftest.build(None)
    with stack:
        res = run_cli(*WATCH[3:], "--port", str(stack.port), "--socket", stack.socket_path,
                      "--interval", "0.5", "--rounds", "2", timeout=60)
    assert res.returncode == 0, res.stderr
    assert "unix-socket: initially pass" in res.stdout, res.stdout
    assert "watched" in res.stdout and ", 0 changes" in res.stdout, res.stdout


def test_watcher_stream_figures_and_failing_time():
    stack, cfg = selftest.build(None)
    with stack:
        watcher = Watcher(RunConfig(**{**cfg.__dict__, "sources": cfg.sources}))
        try:
            watcher.round()
            stats = wait_for(lambda: [s for s in watcher.stream_stats() if s["ok"] and s["fps"] > 0] or None, 10)
            assert stats, watcher.stream_stats()
            host = next(s for s in stats if s["hop"] == "host endpoint")
            assert 3 < host["fps"] < 20 and host["latency_p50_ms"] > 0 and host["bytes_per_frame"] > 100
            stack.server.stop()
            stack.server = None
            watcher.round()
            time.sleep(1.1)
            watcher.round()
            assert watcher.layers["unix-socket"].status == "fail"
            assert watcher.summary()["layers"]["unix-socket"]["failing_s"] >= 1.0
            down = wait_for(lambda: [s for s in watcher.stream_stats() if s["hop"] == "host endpoint" and not s["ok"]], 10)
            assert down and down[0]["error"]
        finally:
            watcher.stop()
