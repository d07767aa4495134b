"""`helixdiag watch` in a real terminal (tmux): a layer breaks and is repaired during the watch."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time

import pytest
from conftest import REPO, require_tool

from helixdiag import selftest
from helixdiag.config import RunConfig
from helixdiag.watch import Watcher

pytestmark = pytest.mark.timeout(120)


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10).stdout


def wait_for(predicate, timeout: float, step: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def test_watch_shows_a_break_and_a_repair_under_tmux(tmp_path):
    require_tool("tmux")
    session = f"hxd-watch-{int(time.time() * 1000)}"
    jsonl = tmp_path / "changes.jsonl"
    stack = selftest.Stack()
    try:
        stack.start_serve()
        stack.start_socat()
        cmd = [sys.executable, "-m", "helixdiag", "watch", "--side", "both", "--host", "127.0.0.1",
               "--port", str(stack.port), "--socket", stack.socket_path, "--interval", "1",
               "--timeout", "1", "--jsonl", str(jsonl)]
        # COLUMNS/LINES from whoever started the tmux server would override the pane's size.
        tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "60",
             f"cd {shlex.quote(str(REPO))} && env -u COLUMNS -u LINES NO_COLOR=1 {shlex.join(cmd)}; sleep 60")
        screen = wait_for(lambda: (s := tmux("capture-pane", "-p", "-t", session)) and "unix-socket" in s
                          and "round 2" in s and s, 30)
        assert screen, tmux("capture-pane", "-p", "-t", session)
        assert "host endpoint" in screen  # the stream table

        stack.server.stop()  # break: serve goes away and takes its socket with it
        stack.server = None
        broken = wait_for(lambda: (s := tmux("capture-pane", "-p", "-t", session))
                          and "pass → fail socket-missing" in s and s, 20)
        assert broken, tmux("capture-pane", "-p", "-t", session)

        stack.start_serve()  # repair
        repaired = wait_for(lambda: (s := tmux("capture-pane", "-p", "-t", session))
                            and "unix-socket: fail → pass" in s and s, 20)
        assert repaired, tmux("capture-pane", "-p", "-t", session)

        tmux("send-keys", "-t", session, "C-c")
        summary = wait_for(lambda: (s := tmux("capture-pane", "-p", "-t", session)) and "watched" in s and s, 15)
        assert summary and "rounds" in summary
        assert "Traceback" not in summary and "crashed" not in summary
    finally:
        tmux("kill-session", "-t", session)
        stack.close()
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    socket_events = [(e["from"], e["to"], e["failure_id"]) for e in events if e["layer"] == "unix-socket"]
    assert (None, "pass", None) in socket_events
    assert ("pass", "fail", "socket-missing") in socket_events
    assert ("fail", "pass", None) in socket_events
    assert all(e["time"].endswith("Z") for e in events)


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
