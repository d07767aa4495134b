"""A newcomer's first hour: the command line behaves the same everywhere.

Global options after the subcommand, -q, pipes into `head`, one error style, plain-words
number errors, `explain` suggestions, `send --save`, output paths checked first, the bundle's
redactions, `logs` on the wrong kind of file, wrapping at 80 columns, the remote install hint.
Every test runs the real CLI in a subprocess (or a real terminal, tmux); nothing is mocked.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
from conftest import REPO, endpoint_of, helixdiag_cmd, require_tool, run_cli, running_server

from helixdiag import selftest
from helixdiag.remote import INSTALL_HINT

pytestmark = pytest.mark.timeout(180)

LOGS = REPO / "tests" / "logs"
MISSING = "/tmp/hxd-habits-no-such-dir/helix.sock"  # a socket that is not there: socket-missing, fast


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ════════════════════════════════════════════════ 1. -v, -q, --no-color anywhere


def test_verbose_works_after_the_subcommand_as_well_as_before():
    after = run_cli("run", "unix-socket", "--socket", MISSING, "-v")
    before = run_cli("-v", "run", "unix-socket", "--socket", MISSING)
    plain = run_cli("run", "unix-socket", "--socket", MISSING)
    for proc in (after, before):
        assert proc.returncode == 1, proc.stderr
        assert "sun_path_limit =" in proc.stdout  # every probe's evidence: only with -v
    assert plain.returncode == 1 and "sun_path_limit =" not in plain.stdout
    assert "-q, --quiet" in run_cli("logs", "--help").stdout


def colours(text: str) -> set[str]:
    """The colour parameters of every SGR escape in text (bold, dim … are not colours)."""
    params = {p for seq in re.findall(r"\x1b\[([0-9;]*)m", text) for p in seq.split(";")}
    return {p for p in params if p.isdigit() and (30 <= int(p) <= 49 or 90 <= int(p) <= 107)}


def test_quiet_and_no_color_work_after_the_subcommand():
    quiet = run_cli("run", "unix-socket", "--socket", MISSING, "-q")
    assert quiet.returncode == 1 and len(lines_of(quiet.stdout)) == 1, quiet.stdout
    env = {"NO_COLOR": "", "FORCE_COLOR": "1"}
    coloured = run_cli("run", "unix-socket", "--socket", MISSING, env=env)
    assert colours(coloured.stdout)  # the test can tell colour from none
    for args in (("run", "unix-socket", "--socket", MISSING, "--no-color"),
                 ("--no-color", "run", "unix-socket", "--socket", MISSING)):
        proc = run_cli(*args, env=env)
        assert proc.returncode == 1 and not colours(proc.stdout), proc.stdout


# ════════════════════════════════════════════════ 2. -q: errors and the final verdict

NV12_PIPELINE = ("pipewiresrc path=47 ! videoconvert ! video/x-raw,format=NV12 ! queue max-size-buffers=1 "
                 "leaky=downstream ! vsockenc tcp-host=10.0.2.2 tcp-port=15937 ! h264parse config-interval=-1 ! "
                 "video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=videosink sync=false")
FRAMERATE_PIPELINE = NV12_PIPELINE.replace("format=NV12 !", "format=NV12,framerate=30/1 !")


@pytest.mark.parametrize(("args", "code", "verdict"), [
    (("run", "unix-socket", "--socket", MISSING), 1, r"^FAIL · root cause socket-missing · "),
    (("send", "--to", "tcp://127.0.0.1:1", "--frames", "2"), 1, r"^FAIL stream-connect-failed\b"),
    (("selftest", "--break", "socket-missing"), 0,
     r"^selftest: broke socket-missing, diagnosed socket-missing → MATCH$"),
    (("logs", str(LOGS / "gst_no_reply.log")), 1, r"^FAIL vsockenc-no-reply in 1 file$"),
    (("lint", FRAMERATE_PIPELINE), 1, r"^FAIL 1 failure, 0 warnings$"),
    (("lint", NV12_PIPELINE), 0, r"^PASS no rule is broken$"),
])
def test_quiet_prints_only_the_verdict_line(args, code, verdict):
    for quiet_args in (("-q", *args), (*args, "-q")):
        proc = run_cli(*quiet_args)
        assert proc.returncode == code, proc.stderr
        out = lines_of(proc.stdout)
        assert len(out) == 1 and re.search(verdict, out[0]), proc.stdout
        assert proc.stderr == ""


def test_quiet_watch_keeps_its_summary():
    proc = run_cli("watch", "--socket", MISSING, "--rounds", "1", "--interval", "0.5", "-q", timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = lines_of(proc.stdout)
    assert re.fullmatch(r"watched \d+ s, 1 round, 0 changes", out[0]), proc.stdout
    assert "  unix-socket: now fail (socket-missing), failing for 0 s in total" in out, proc.stdout
    assert all(re.fullmatch(r"  [\w-]+: now \w+.*, failing for \d+ s in total", line) for line in out[1:]), out


def test_quiet_still_shows_errors():
    proc = run_cli("-q", "run", "--profile", "no-such-profile")
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(lines_of(proc.stderr)) == 1 and proc.stderr.startswith("error: ")


# ════════════════════════════════════════════════ 3. a reader that goes away


def piped_into_head(args: list[str], timeout: float = 90, *, with_stderr: bool = False) -> tuple[int, str, str]:
    """`helixdiag ARGS | head -1` (`2>&1 | head -1` with_stderr) with a real pipe, made small
    (one page) so that head has surely gone while helixdiag still writes. Returns
    (helixdiag's code, head's line, stderr)."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    head = subprocess.Popen(["head", "-1"], stdin=read_end, stdout=subprocess.PIPE, text=True)
    os.close(read_end)
    proc = subprocess.Popen(helixdiag_cmd(*args), stdout=write_end,
                            stderr=write_end if with_stderr else subprocess.PIPE, text=True,
                            cwd=REPO, env={**os.environ, "NO_COLOR": "1"})
    os.close(write_end)
    try:
        first, _ = head.communicate(timeout=timeout)
        _, err = proc.communicate(timeout=timeout)
        err = err or ""
    finally:
        for p in (head, proc):
            if p.poll() is None:
                p.kill()
    return proc.returncode, first, err


def assert_quiet_stderr(err: str) -> None:
    assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipe" not in err, err


def test_logs_into_head_keeps_its_own_exit_code():
    healthy = [str(LOGS / "gst_healthy.log")] * 40  # ~30 kB of report: more than the pipe holds
    code, first, err = piped_into_head(["logs", *healthy])
    assert code == 0 and "gst_healthy.log" in first
    assert_quiet_stderr(err)
    code, _, err = piped_into_head(["logs", *[str(LOGS / "gst_no_reply.log")] * 40])
    assert code == 1
    assert_quiet_stderr(err)


def test_explain_list_into_head_leaves_no_noise_at_exit():
    code, first, err = piped_into_head(["explain", "--list"])
    assert code == 0 and first.strip()
    assert_quiet_stderr(err)


@pytest.fixture
def stack_args():
    """A healthy local stack (serve + real socat) and the `run --all` arguments that probe it."""
    require_tool("socat")
    stack = selftest.Stack()
    try:
        stack.start_serve()
        stack.start_socat()
        yield ["run", "--all", "--side", "both", "--topology", "socat", "--host", "127.0.0.1",
               "--port", str(stack.port), "--socket", stack.socket_path]
    finally:
        stack.close()


def test_run_all_into_head_keeps_its_own_exit_code(stack_args):
    args = ["-v", *stack_args]
    alone = subprocess.run(helixdiag_cmd(*args), capture_output=True, text=True, timeout=90,
                           cwd=REPO, env={**os.environ, "NO_COLOR": "1"})
    assert alone.returncode == 0, alone.stdout[-2000:]
    assert len(alone.stdout) > 12_000  # enough to outlast head and the pipe
    code, first, err = piped_into_head(args)
    assert (code, first.split(" — ")[0]) == (0, "helixdiag run")
    assert_quiet_stderr(err)


def test_run_json_into_head_keeps_its_own_exit_code(stack_args):
    code, first, err = piped_into_head([*stack_args, "--json", "-"])
    assert code == 0 and first.strip() == "{"
    assert_quiet_stderr(err)
    # 2>&1: the human view (on stderr with --json -) meets the closed pipe too
    code, first, _ = piped_into_head(["-v", *stack_args, "--json", "-"], with_stderr=True)
    assert code == 0 and first.strip()


# ════════════════════════════════════════════════ 4. one error style


@pytest.mark.parametrize(("args", "expected"), [
    (("run", "--al"), r"^error: no such option '--al'.*did you mean.*'--all'"),
    (("bogus",), r"^error: no such command 'bogus'"),
    (("logs",), r"^error: missing argument 'FILE\.\.\.'"),
    (("run", "--side", "sideways"), r"^error: invalid value for '--side'"),
    (("explain",), r"^error: give a FAILURE_ID"),
    (("run", "unix-socket", "-x"), r"^error: no such option '-x'"),
])
def test_usage_errors_are_one_line_in_one_style(args, expected):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(lines_of(proc.stderr)) == 1, proc.stderr
    assert re.search(expected, proc.stderr, re.IGNORECASE), proc.stderr
    assert "Error:" not in proc.stderr and "Usage:" not in proc.stderr


# ════════════════════════════════════════════════ 5. numbers in plain words


@pytest.mark.parametrize(("args", "expected"), [
    (("run", "--port", "abc"), "'abc' is not a whole number; expected a whole number from 1 to 65535"),
    (("run", "--port", "70000"), "70000 is out of range; expected a whole number from 1 to 65535"),
    (("run", "--frames", "0"), "expected a whole number from 1 to 10000"),
    (("send", "--timeout", "soon"), "'soon' is not a number; expected a number from 0.05 to 600"),
    (("send", "--duration", "-1"), "expected a number of at least 0.1"),
    (("lint", "--port", "0", NV12_PIPELINE), "0 is out of range; expected a whole number from 1 to 65535"),
    (("serve", "--bitrate", "fast"), "'fast' is not a whole number; expected a whole number from 10000 to 500000000"),
    (("serve", "--idle-timeout", "soon"), "'soon' is not a number; expected a number from 0 to 86400"),
    (("serve", "--fps", "0"), "0 is out of range; expected a whole number from 1 to 240"),
    (("serve", "--max-clients", "0"), "0 is out of range; expected a whole number from 1 to 1024"),
    (("watch", "--interval", "0.1"), "0.1 is out of range; expected a number from 0.5 to 3600"),
    (("watch", "--rounds", "0"), "0 is out of range; expected a whole number of at least 1"),
])
def test_number_errors_say_what_is_expected(args, expected):
    proc = run_cli(*args)
    assert proc.returncode == 2 and len(lines_of(proc.stderr)) == 1
    assert expected in proc.stderr, proc.stderr
    assert "range" not in proc.stderr.replace("out of range", "")  # no "integer range" jargon


# ════════════════════════════════════════════════ 6. explain by substring


def test_explain_suggests_ids_that_contain_the_word():
    proc = run_cli("explain", "stale")
    assert proc.returncode == 2 and len(lines_of(proc.stderr)) == 1
    assert "did you mean socket-stale" in proc.stderr, proc.stderr
    proc = run_cli("explain", "stale socket")
    assert proc.returncode == 2 and "did you mean socket-stale" in proc.stderr, proc.stderr  # the closest first


# ════════════════════════════════════════════════ 7. send --save says where


def test_send_save_says_where_and_how_much(tmp_path):
    target = tmp_path / "out.h264"
    with running_server() as server:
        ep = endpoint_of(server)
        proc = run_cli("send", "--to", f"tcp://{ep.host}:{ep.port}", "--frames", "3", "--size", "320x240",
                       "--no-decode", "--save", str(target))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    size = target.stat().st_size
    assert size > 0
    assert f"saved {size} bytes of H.264 (Annex-B, 3 frames) to {target}" in proc.stdout, proc.stdout


# ════════════════════════════════════════════════ 8. output paths first


def connections_while(args: list[str]) -> tuple[subprocess.CompletedProcess, int]:
    """Run `run guest-tcp …` against a listener of ours; how many times did it dial us?"""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        proc = run_cli("run", "guest-tcp", "--side", "both", "--host", "127.0.0.1", "--port", str(port),
                       "--timeout", "0.5", *args)
        dialled = 0
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                break
            conn.close()
            dialled += 1
    return proc, dialled


@pytest.mark.parametrize("option", ["--json", "--junit", "--html", "--bundle"])
def test_run_output_paths_are_checked_before_the_run(option, tmp_path):
    proc, dialled = connections_while([option, str(tmp_path / "fine.out")])
    assert dialled > 0 and proc.returncode in (0, 1)  # a good path: the probes ran
    for path, words in ((tmp_path / "no-such-dir" / "r.out", "does not exist"),
                        (tmp_path, "is a directory")):
        proc, dialled = connections_while([option, str(path)])
        assert proc.returncode == 2, proc.stdout
        assert dialled == 0 and proc.stdout == ""  # nothing ran
        assert len(lines_of(proc.stderr)) == 1 and words in proc.stderr and option in proc.stderr


@pytest.mark.parametrize(("args", "option"), [
    (("lint", NV12_PIPELINE, "--json"), "--json"),
    (("watch", "--socket", MISSING, "--rounds", "1", "--jsonl"), "--jsonl"),
    (("serve", "--tcp", "127.0.0.1:0", "--duration", "1", "--stats-json"), "--stats-json"),
])
def test_lint_watch_and_serve_check_their_output_paths_first(args, option, tmp_path):
    for path, words in ((tmp_path / "no-such-dir" / "out.json", "does not exist"), (tmp_path, "is a directory")):
        proc = run_cli(*args, str(path), timeout=30)
        assert proc.returncode == 2 and proc.stdout == "", proc.stdout  # nothing ran, nothing listened
        assert len(lines_of(proc.stderr)) == 1 and words in proc.stderr and option in proc.stderr, proc.stderr


def test_selftest_checks_its_output_paths_before_starting_the_stack(tmp_path):
    proc = run_cli("selftest", "--break", "socket-missing", "--html", str(tmp_path / "nope" / "x.html"))
    assert proc.returncode == 2
    assert proc.stdout == "", proc.stdout  # no "stack: …": nothing was started
    assert len(lines_of(proc.stderr)) == 1 and "does not exist" in proc.stderr
    proc = run_cli("send", "--to", "tcp://127.0.0.1:1", "--save", str(tmp_path))
    assert proc.returncode == 2 and "is a directory" in proc.stderr and proc.stdout == ""


def test_selftest_break_all_writes_one_html_with_every_scenario(tmp_path):
    require_tool("socat")
    page = tmp_path / "all.html"
    proc = run_cli("selftest", "--break", "all", "--html", str(page), timeout=170)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert page.is_file(), proc.stdout[-2000:]
    html = page.read_text()
    ran = [line.split(":")[0].split("] ", 1)[1] for line in proc.stdout.splitlines()
           if re.match(r"^\[\d+/\d+\] .*: match$", line)]
    assert "(healthy)" in ran and len(ran) >= 10
    for label in ran:
        assert re.search(rf"<section id='s\d+'><h2>{re.escape(label)} ", html), label
    for name in selftest.scenario_names():
        assert name in html  # in the summary table, run or not
    assert lines_of(proc.stdout)[-1].startswith("selftest --break all: every scenario diagnosed as expected")


# ════════════════════════════════════════════════ 9. the bundle lists every redaction


def test_bundle_manifest_lists_redactions_in_log_tails(tmp_path):
    secret = f"tok-{uuid.uuid4().hex}"
    log = tmp_path / "bridge.log"
    text = (LOGS / "gst_healthy.log").read_text()
    log.write_text(f"export MY_API_TOKEN={secret}\n" + text)
    bundle = tmp_path / "b.tar.gz"
    proc = run_cli("run", "vsockenc.log", "--side", "guest", "--gst-log", str(log), "--bundle", str(bundle),
                   env={"MY_API_TOKEN": secret})
    assert proc.returncode in (0, 1), proc.stderr
    with tarfile.open(bundle) as tar:
        tail = tar.extractfile("helixdiag-report/logs/gst_log.tail.txt").read().decode()
        manifest = json.loads(tar.extractfile("helixdiag-report/manifest.json").read())
    assert secret not in tail and "<redacted:MY_API_TOKEN>" in tail
    assert "env:MY_API_TOKEN" in manifest["redactions"], manifest["redactions"]
    entry = next(f for f in manifest["files"] if f["name"] == "logs/gst_log.tail.txt")
    assert entry["redactions"] == ["env:MY_API_TOKEN"]


# ════════════════════════════════════════════════ 10. logs on the wrong kind of file


def test_logs_missing_file_or_directory_is_one_line_exit_2(tmp_path):
    missing = tmp_path / "helix.log"
    proc = run_cli("logs", str(missing))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == f"error: no such file: {missing}"
    proc = run_cli("logs", str(tmp_path))
    assert proc.returncode == 2 and proc.stdout == ""
    assert lines_of(proc.stderr) == [f"error: {tmp_path} is a directory, not a log file"]


def test_logs_binary_file_is_not_a_pass(tmp_path):
    binary = tmp_path / "core.bin"
    binary.write_bytes(bytes(range(256)) * 64 + b"\n\x00\xff\xfe\n" * 50)
    proc = run_cli("logs", str(binary))
    assert proc.returncode == 2
    assert "PASS" not in proc.stdout
    assert "not a text log" in proc.stderr and len(lines_of(proc.stderr)) == 1


@pytest.mark.parametrize("content", [
    "hello\nworld\n",
    "0:00:00.100000000 12345 0x55d0 INFO  videoconvert gstvideoconvert.c:100:foo:<vc0> something\n" * 3,
])
def test_logs_with_nothing_recognised_is_never_healthy(content, tmp_path):
    path = tmp_path / "bridge.log"
    path.write_text(content)
    n = content.count("\n")
    for args in (("logs", str(path)), ("logs", "--kind", "gst", str(path))):
        proc = run_cli(*args)
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout
        assert "PASS" not in out and "healthy" not in out, out
        assert f"{n} read · none recognised" in out, out
        assert lines_of(out)[-1].startswith("NOTHING RECOGNISED in 1 file"), out


def test_logs_says_what_it_recognised():
    proc = run_cli("-v", "logs", str(LOGS / "gst_healthy.log"))
    assert proc.returncode == 0
    assert "30 read · 30 recognised, 6 kinds" in proc.stdout
    assert "sent-frame ×6" in proc.stdout


# ════════════════════════════════════════════════ 11. 80 columns, in a real terminal


class Tmux:
    def __init__(self, command: str, width: int = 80, height: int = 60) -> None:
        require_tool("tmux")
        self.name = f"hxd-habits-{uuid.uuid4().hex[:10]}"
        line = (f"cd {shlex.quote(str(REPO))} && unset COLUMNS LINES && export NO_COLOR=1 && "
                f"{command}; echo HXD-DONE; sleep 60")
        self._tmux("new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height), line)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10).stdout

    def wait_done(self, timeout: float = 30) -> str:
        import time

        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self._tmux("capture-pane", "-p", "-t", self.name)
            if "HXD-DONE" in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"no end within {timeout} s:\n{screen}")

    def close(self) -> None:
        self._tmux("kill-session", "-t", self.name)


WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
         "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
         "uniform", "victor", "whiskey", "xray", "yankee", "zulu"]


def test_long_lines_hang_under_their_label_at_80_columns():
    socket_path = f"/tmp/hxd-habits/{' '.join(WORDS)}.sock"  # too long for sun_path, and worded
    term = Tmux(f"{shlex.join([sys.executable, '-m', 'helixdiag', '-v', 'run', 'unix-socket', '--socket', socket_path])}")
    try:
        screen = term.wait_done()
    finally:
        term.close()
    rows = screen.splitlines()
    assert all(len(r) <= 80 for r in rows)
    start = next(i for i, r in enumerate(rows) if r.startswith("  remedy: "))
    end = next(i for i, r in enumerate(rows) if r.startswith("  more: "))
    assert end > start + 1, screen  # the remedy does wrap at 80 columns
    for row in rows[start + 1:end]:
        assert row.startswith(" " * len("  remedy: ")) and row.strip(), screen
    # evidence is cut on a word boundary, with an ellipsis
    cuts = re.findall(r"(\S+)…", screen)
    assert cuts, screen
    assert all(cut in WORDS for cut in cuts), cuts
    # and the evidence's own continuation lines hang under the value, not the key
    path_row = next(i for i, r in enumerate(rows) if "path = /tmp/hxd-habits/" in r)
    column = rows[path_row].index("/tmp/hxd-habits/")
    assert rows[path_row + 1][:column].strip() == "" and rows[path_row + 1][column] != " ", screen


# ════════════════════════════════════════════════ 12. the remote install hint is true


def test_remote_install_hint_is_a_runnable_recipe(tmp_path):
    assert "<" not in INSTALL_HINT and "this repository" not in INSTALL_HINT
    build = re.search(r"python3 -m pip wheel --no-deps -w dist (\S+)", INSTALL_HINT)
    install = re.search(r"python3 -m pip install --user \./(helixdiag-\S+\.whl)", INSTALL_HINT)
    assert build and install, INSTALL_HINT
    assert Path(shlex.split(build.group(1))[0]) == REPO
    dist = tmp_path / "dist"
    # the hint's own commands, with this interpreter for python3 and a scratch target for --user
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), build.group(1)],
                   check=True, timeout=170, capture_output=True)
    wheel = dist / install.group(1)
    assert wheel.is_file(), sorted(p.name for p in dist.iterdir())
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, timeout=120, capture_output=True)
    proc = subprocess.run([sys.executable, "-m", "helixdiag", "explain", "socket-stale"], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)})
    assert proc.returncode == 0 and "socket-stale" in proc.stdout
    version = subprocess.run([sys.executable, "-c", "import helixdiag; print(helixdiag.__file__)"],
                             capture_output=True, text=True, timeout=60, cwd=tmp_path,
                             env={**os.environ, "PYTHONPATH": str(target)})
    assert version.stdout.startswith(str(target))  # the wheel's copy ran, not the checkout


# ════════════════════════════════════════════════ a thin command line


def test_no_command_imports_another_commands_module():
    """What several commands share lives in a shared module (cli/options.py, cli/reporting.py,
    …), never in one of the commands."""
    import ast

    commands = sorted((REPO / "helixdiag" / "cli").glob("cmd_*.py"))
    assert len(commands) >= 10
    for path in commands:
        tree = ast.parse(path.read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {f"helixdiag.cli.{a.name}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                     and node.module == "helixdiag.cli" for a in node.names}
        others = {m for m in imported if m.startswith("helixdiag.cli.cmd_")}
        assert not others, f"{path.name} imports {others}"


# ════════════════════════════════════════════════ no traceback, even from a broken install


def test_a_command_that_cannot_be_imported_is_a_crash_report_not_a_traceback():
    code = ("import sys; sys.modules['helixdiag.cli.cmd_fix'] = None  # as if the file were broken\n"
            "from helixdiag.cli import main; main(['explain', 'socket-stale'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.match(r"error: helixdiag crashed: (ModuleNotFound|Import)Error", proc.stderr), proc.stderr
    crash_file = re.search(r"traceback written to (\S+);", proc.stderr).group(1)
    assert "cmd_fix" in Path(crash_file).read_text()
    os.unlink(crash_file)
