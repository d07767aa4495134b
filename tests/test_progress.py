"""Long work shows its progress on a terminal — and nowhere else.

`send` (frames sent and received, with the rate), `logs` (bytes scanned, with the rate and the
time left), `run` and the self-test (the probe waited on, how long it has run and may run,
how many are done) draw a live display in a real terminal (tmux, 80 columns). Piped (stdout
not a terminal) or under -q nothing of it appears, and what stays on the screen is what a
pipe gets. Ctrl-C during `send` prints the figures measured so far. Real processes: the
reference server, a log of tens of megabytes generated into /tmp, loopback only.
"""

from __future__ import annotations

import gzip
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO, helixdiag_cmd
from run_helpers import kill_group, start_serve
from tmux_term import Tmux

from helixdiag import logscan

pytestmark = pytest.mark.timeout(150)

DONE = "HXD-DONE"
BAR = "━"  # rich's progress bar


def in_terminal(args: list[str], *, quiet: bool = False, piped: bool = False, timeout: float = 60,
                width: int = 80, height: int = 60) -> tuple[list[str], str]:
    """`helixdiag ARGS` in a real terminal (optionally `-q`, or `| cat`: stdout a pipe, stderr
    still the terminal), its screen read every 0.1 s until it ends. Returns every screen seen
    while it ran and the output left on the screen at the end (without the marker)."""
    cmd = shlex.join(helixdiag_cmd(*(["-q"] if quiet else []), *args)) + (" | cat" if piped else "")
    screens = []
    with Tmux(width, height, f"{cmd}; echo {DONE}; sleep 60") as term:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = term.screen()
            if re.search(rf"^{DONE}$", screen, flags=re.M):
                return screens, screen.split(DONE)[0].rstrip()
            screens.append(screen)
            time.sleep(0.1)
        raise AssertionError(f"no end within {timeout} s:\n{term.screen()}")


def shape(text: str) -> list[str]:
    """Lines with every number replaced (rates and times differ from run to run), without the
    run's line about other processes on this machine (other tests' come and go)."""
    text = re.sub(r"^also on this machine, not judged: .*?(?=^(guest|host|either) )", "", text, flags=re.M | re.S)
    return [re.sub(r"\d+(\.\d+)?", "N", line.rstrip()) for line in text.strip().splitlines() if line.strip()]


def assert_progress_only_on_a_terminal(args: list[str], progress: str, *, timeout: float = 60) -> list[str]:
    """The live display (`progress`, a regex) shows while ARGS run in a terminal, and is gone
    at the end; piped or with -q it never shows, and the output is the same. Returns the
    progress lines seen."""
    screens, final = in_terminal(args, timeout=timeout)
    seen = [m.group(0) for s in screens for m in re.finditer(progress, s)]
    assert seen, "no progress while it ran:\n" + "\n---\n".join(screens[-3:])
    assert not re.search(progress, final) and BAR not in final, final  # erased when done

    piped_screens, piped = in_terminal(args, piped=True, timeout=timeout)
    assert not [s for s in piped_screens if re.search(progress, s) or BAR in s], piped_screens[-1]
    assert shape(piped) == shape(final), f"terminal:\n{final}\n\npiped:\n{piped}"

    quiet_screens, quiet = in_terminal(args, quiet=True, timeout=timeout)
    assert not [s for s in quiet_screens if re.search(progress, s) or BAR in s], quiet_screens[-1]
    verdict = shape(quiet)
    assert 1 <= len(verdict) <= 2 and shape(final)[-len(verdict):] == verdict, quiet  # the verdict alone
    return seen


# ════════════════════════════════════════════════ send: frames and rate


@pytest.fixture
def serve_address():
    serve, address = start_serve("--tcp", "127.0.0.1:0")
    try:
        yield address
    finally:
        kill_group(serve)


def test_send_shows_frames_sent_and_received_with_the_rate(serve_address):
    frames = 120
    args = ["send", "--to", serve_address, "--frames", str(frames), "--size", "1920x1080"]
    seen = assert_progress_only_on_a_terminal(
        args, rf"(\d+)/{frames} sent · (\d+) received · [\d.]+ frames/s")
    counts = {int(re.match(r"\d+", s).group(0)) for s in seen}
    assert len(counts) >= 2 and min(counts) < frames, seen  # counted as it went


def test_ctrl_c_during_send_prints_what_was_measured_so_far(serve_address):
    proc = subprocess.Popen(helixdiag_cmd("send", "--to", serve_address, "--frames", "1000000",
                                          "--size", "640x480"),
                            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env={**os.environ, "NO_COLOR": "1"})
    try:
        time.sleep(3.0)
        assert proc.poll() is None, "send ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and err.strip() == "error: interrupted", err
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"so far: (\d+) sent · (\d+) received · ([\d.]+) frames/s over ([\d.]+) s · "
                     r"([\d.]+) kB/frame", last)
    assert m, out
    sent, received, rate = int(m[1]), int(m[2]), float(m[3])
    assert received >= 10 and sent - received in (0, 1) and rate > 0, last


# ════════════════════════════════════════════════ logs: bytes, rate, time left


def write_big_gst_log(path: Path, size: int) -> None:
    """A healthy vsockenc log of about `size` bytes: frame after frame, each answered."""
    head = "0:00:00.000000000   333 0xe7a330000c00 "
    with path.open("w") as f:
        f.write(f"{head}INFO  vsockenc gstvsockenc.c:322:gst_vsockenc_connect:<vsockenc0> "
                "Connected via TCP to 10.0.2.2:15937 (TCP_NODELAY, sndbuf=1MB)\n")
        written, frame = 0, 1
        while written < size:
            ts = f"{frame // 3600:d}:{frame // 60 % 60:02d}:{frame % 60:02d}.{frame % 1000:09d}   333 0xe7a330000c00 "
            chunk = (f"{ts}DEBUG vsockenc gstvsockenc.c:741:gst_vsockenc_handle_frame:<vsockenc0> "
                     "Sent 3110400 bytes of pixel data\n"
                     f"{ts}DEBUG vsockenc gstvsockenc.c:747:gst_vsockenc_handle_frame:<vsockenc0> "
                     f"Sent frame {frame}, resource_id=0, size=1920x1080, keyframe={int(frame == 1)}\n"
                     f"{ts}DEBUG vsockenc gstvsockenc.c:531:gst_vsockenc_finish_pending:<vsockenc0> "
                     f"Finished pending frame pts={frame} keyframe=0 nal_count=1 total_size=18211\n")
            f.write(chunk)
            written += len(chunk)
            frame += 1


@pytest.fixture(scope="module")
def big_log(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hxd-progress") / "bridge.log"
    assert str(path).startswith("/tmp/")
    write_big_gst_log(path, 40_000_000)
    return path


def test_logs_shows_bytes_scanned_with_rate_and_time_left(big_log):
    seen = assert_progress_only_on_a_terminal(
        ["logs", str(big_log)], r"([\d.]+)/40\.0 MB [\d.]+ MB/s \d+:\d\d:\d\d scanning ")
    done = {float(re.match(r"[\d.]+", s).group(0)) for s in seen}
    assert len(done) >= 2 and min(done) < 40.0, seen


def test_a_log_read_for_progress_is_scanned_like_scan_file(tmp_path):
    """What `logs` reads itself (to count the bytes) gives the summary logscan.scan_file gives,
    for every fixture, plain and gzipped; the bytes counted are the file's (compressed) size."""
    from helixdiag.cli import log_input

    fixtures = sorted((REPO / "tests" / "logs").glob("*.log"))
    assert len(fixtures) >= 20
    for plain in fixtures:
        packed = tmp_path / (plain.name + ".gz")
        packed.write_bytes(gzip.compress(plain.read_bytes()))
        for path in (plain, packed):
            counted = []
            mine = log_input.scan(str(path), "auto", counted.append).to_dict()
            theirs = logscan.scan_file(str(path), "auto").to_dict()
            mine.pop("source_age_s", None), theirs.pop("source_age_s", None)
            assert mine == theirs, path.name
            assert sum(counted) == path.stat().st_size, path.name


# ════════════════════════════════════════════════ run and the self-test: the probe waited on


def test_run_shows_the_probe_it_waits_on_with_its_timeout():
    serve, address = start_serve("--tcp", "127.0.0.1:0", "--fault", "hang")
    try:
        port = address.rsplit(":", 1)[1]
        args = ["run", "--all", "--side", "both", "--host", "127.0.0.1", "--topology", "tcp", "--port", port,
                "--timeout", "2"]
        seen = assert_progress_only_on_a_terminal(
            args, r"(\d+)/(\d+) waiting on ([\w.-]+) · ([\d.]+) s of ([\d.]+) s")
    finally:
        kill_group(serve)
    waits = [re.search(r"(\d+)/(\d+) waiting on ([\w.-]+) · ([\d.]+) s of ([\d.]+) s", s).groups() for s in seen]
    assert {w[2] for w in waits} & {"stream.ping", "stream.exchange", "guest-tcp.ping"}, waits  # the silent host
    assert all(float(w[3]) <= float(w[4]) and int(w[0]) < int(w[1]) for w in waits), waits
    assert len({w[3] for w in waits}) >= 2, waits  # the time waited goes up


def test_selftest_shows_the_probe_its_scenario_waits_on():
    screens, final = in_terminal(["selftest", "--break", "stream-no-reply"], timeout=90)
    progress = r"\d+/\d+ selftest[\w -]*: waiting on [\w.-]+ · [\d.]+ s of [\d.]+ s"
    assert [s for s in screens if re.search(progress, s)], "\n---\n".join(screens[-3:])
    assert final.splitlines()[-1].endswith("diagnosed stream-no-reply → MATCH"), final
    assert BAR not in final
