"""`helixdiag serve` in a real terminal (tmux, an interactive bash with job control): the
live status line is drawn only while serve is the terminal's foreground job."""

from __future__ import annotations

import shlex
import sys

import pytest
from tmux_term import Tmux, wait_for

pytestmark = pytest.mark.timeout(120)

STATUS = "Ctrl-C stops"  # the end of serve's live status line


def test_status_line_only_while_serve_is_the_foreground_job():
    serve = shlex.join([sys.executable, "-m", "helixdiag", "serve", "--tcp", "127.0.0.1:0"])
    with Tmux(120, 30) as term:
        assert term.wait(lambda s: s.rstrip().endswith("$"), 10), term.screen()
        term.type(f"{serve} &")
        assert term.wait(lambda s: "listening tcp://" in s, 30), term.screen()
        term.type("echo typed-at-the-prompt")
        assert term.wait(lambda s: "\ntyped-at-the-prompt" in s, 10), term.screen()
        # In the background for 2.5 s (five redraw periods): the status line never appears.
        assert wait_for(lambda: STATUS in term.screen(), 2.5) is None, term.screen()

        term.type("fg")  # in the foreground now: the status line is drawn
        assert term.wait(lambda s: STATUS in s, 10), term.screen()

        term.keys("C-z")  # stopped, then resumed in the background: the drawing stops again
        assert term.wait(lambda s: "Stopped" in s, 10), term.screen()
        term.type("bg")
        term.type("clear")
        assert term.wait(lambda s: STATUS not in s and s.rstrip().endswith("$"), 10), term.screen()
        assert wait_for(lambda: STATUS in term.screen(), 2.5) is None, term.screen()

        term.type("kill -INT %1")
        assert term.wait(lambda s: "stopped: 0 clients" in s, 15), term.screen()
