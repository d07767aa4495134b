"""Hostile input for the parsers: profiles with wrong types, socat command lines with odd
addresses, pipeline strings with quotes, escapes and control characters, and logs whose
matched lines carry binary junk, console markup and terminal escapes.

Every case either parses to the right thing or fails with the tool's own error (ConfigError,
ParseError, PipelineSyntaxError: exit 2 on the command line), never a traceback; and text
taken from the input is printed as text, never interpreted as rich markup.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from conftest import run_cli

from helixdiag import logscan, pipeline, runner
from helixdiag.config import load_profile, resolve
from helixdiag.errors import ConfigError
from helixdiag.observe.parsers import ParseError, parse_socat_cmdline
from helixdiag.observe.processes import ProcInfo

pytestmark = pytest.mark.timeout(120)

# C0 controls and DEL, except tab and newline: what must never reach a terminal from input.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def assert_clean_exit(proc, codes: tuple[int, ...]) -> str:
    text = proc.stdout + proc.stderr
    assert proc.returncode in codes, f"exit {proc.returncode}:\n{text[-2000:]}"
    for marker in ("Traceback", "crashed", "MarkupError"):
        assert marker not in text, text[-2000:]
    return text


# ------------------------------------------------------------------------ profiles

WRONG_PROFILES = [
    ("port = true", "port must be a whole number"),
    ("port = 1.5", "port must be a whole number"),
    ('port = "x"', "port must be a whole number"),
    ("port = [5900]", "port must be a whole number"),
    ("port = {value = 5900}", "port must be a whole number"),
    ("port = 1979-05-27", "port must be a whole number"),
    ("port = 0", "1 to 65535"),
    ("port = 99999999999999999999", "1 to 65535"),
    ('timeout = "fast"', "timeout must be a number"),
    ("timeout = nan", "0.05 to 600"),
    ("timeout = inf", "0.05 to 600"),
    ("timeout = -1", "0.05 to 600"),
    ("deadline = true", "deadline must be a number"),
    ("deadline = 1e400", "1 to 3600"),
    ("frames = 0", "frames must be 1 to 10000"),
    ("frames = 2.5", "frames must be a whole number"),
    ('frames = "ten"', "frames must be a whole number"),
    ("side = 5", "side must be text"),
    ('side = "sideways"', "side must be one of"),
    ('side = ["both"]', "side must be text"),
    ('topology = "vsock"', "topology must be one of"),
    ('mode = ""', "mode must be one of"),
    ('size = "²x²"', "is not WIDTHxHEIGHT"),  # str.isdigit() is true for "²"; int() is not
    ('size = "٣٢٠x٢٤٠"', "is not WIDTHxHEIGHT"),
    ('size = "320x"', "is not WIDTHxHEIGHT"),
    ('size = "0x0"', "each side must be 1..8192"),
    ('size = "320x240x1"', "is not WIDTHxHEIGHT"),
    ("size = 320", "is not WIDTHxHEIGHT"),
    ("host = 1", "host must be text"),
    ('socket = "/tmp/a\\u0000b.sock"', "NUL"),  # every os/socket call would raise ValueError
    ('qemu_log = "/tmp/q\\u0000.log"', "NUL"),
    ("qemu_log = false", "qemu_log must be text"),
    ("prot = 5900", "unknown key"),
    ("[run.sub]\nport = 1", "unknown key"),
]


@pytest.mark.parametrize(("body", "message"), WRONG_PROFILES)
def test_profile_with_a_wrong_value_is_a_config_error(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'description = "hostile"\n[run]\n{body}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        resolve({"profile": str(path)}, env={})
    assert str(path) in str(info.value)


STRUCTURALLY_BROKEN = [
    ("run = 5\n", "must be a table"),
    ("[[run]]\nport = 1\n", "must be a table"),
    ("[run]\nport = \n", "not valid TOML"),
    ("\ufeff[run]\nport = 1\n", "not valid TOML"),
    ("[run]\nhost = " + "[" * 5000 + "]" * 5000 + "\n", "too deeply"),  # RecursionError in tomllib
    ("[run]\nhost = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n", "too deeply"),
]


@pytest.mark.parametrize(("text", "message"), STRUCTURALLY_BROKEN,
                         ids=["run-int", "run-array", "no-value", "bom", "deep-arrays", "deep-tables"])
def test_profile_that_is_not_a_profile_is_a_config_error(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_profile(str(path))


def test_profile_that_is_binary_or_a_directory_is_a_config_error(tmp_path):
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00\x80[run]\x00")
    with pytest.raises(ConfigError, match="cannot read profile"):
        load_profile(str(binary))
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(ConfigError, match="no profile"):
        load_profile(str(tmp_path / "dir.toml"))


@pytest.mark.parametrize(("body", "fragment"), [
    ('[run]\nsize = "²x²"\n', "size"),
    ("[run]\nhost = " + "[" * 5000 + "]" * 5000 + "\n", "too deeply"),
    ('[run]\nsocket = "/tmp/a\\u0000b.sock"\n', "NUL"),
    ("[run]\nport = true\n", "port must be a whole number"),
], ids=["superscript-size", "deep-nesting", "nul-path", "bool-port"])
def test_cli_run_with_a_hostile_profile_exits_2_on_one_line(tmp_path, body, fragment):
    path = tmp_path / "hostile.toml"
    path.write_text(body, encoding="utf-8")
    proc = run_cli("run", "stream", "--side", "both", "--host", "127.0.0.1", "--profile", str(path))
    assert_clean_exit(proc, (2,))
    assert fragment in proc.stderr
    assert proc.stderr.startswith("error:") and len(proc.stderr.strip().splitlines()) <= 2, proc.stderr


def test_cli_hostile_environment_values_exit_2():
    for name, value in (("HELIXDIAG_SIZE", "²x²"), ("HELIXDIAG_PORT", "0x10"), ("HELIXDIAG_TIMEOUT", "nan"),
                        ("HELIXDIAG_SIDE", "[/x]")):
        proc = run_cli("run", "stream", "--host", "127.0.0.1", env={name: value})
        assert_clean_exit(proc, (2,))
        assert name in proc.stderr and value in proc.stderr, proc.stderr  # quoted as text, not markup


# ------------------------------------------------------------------ socat command lines

ODD_SOCAT = [
    # argv, cwd → (listen_port, bind, ip_version, fork, target_kind, target_path, target_host, target_port)
    (["socat", "TCP-LISTEN:5900,bind=[::1]:5900,fork", "UNIX-CONNECT:/tmp/h.sock"], None,
     (5900, "::1", None, True, "unix", "/tmp/h.sock", None, None)),
    (["socat", "tcp6-listen:5900,BIND=::1", "UNIX:/tmp/h.sock"], None,
     (5900, "::1", 6, False, "unix", "/tmp/h.sock", None, None)),
    (["socat", "TCP4-LISTEN:5900,bind=127.0.0.1:", "UNIX:/tmp/h.sock"], None,
     (5900, "127.0.0.1", 4, False, "unix", "/tmp/h.sock", None, None)),
    (["socat", "TCP-LISTEN:5900,bind=", "UNIX:/tmp/h.sock"], None,
     (5900, None, None, False, "unix", "/tmp/h.sock", None, None)),
    (["socat", "TCP-LISTEN:5900,fork=0,reuseaddr", "UNIX-CONNECT:/tmp/h.sock"], None,
     (5900, None, None, False, "unix", "/tmp/h.sock", None, None)),
    (["socat", "TCP-LISTEN:5900,FORK", "UNIX-CONNECT:/tmp/h.sock"], None,
     (5900, None, None, True, "unix", "/tmp/h.sock", None, None)),
    (["socat", "TCP-LISTEN:05900,,fork,", "UNIX-CONNECT:/tmp/h.sock,retry=3"], None,
     (5900, None, None, True, "unix", "/tmp/h.sock", None, None)),
    (["socat", "TCP-LISTEN:0", "UNIX:/tmp/h.sock"], None,
     (0, None, None, False, "unix", "/tmp/h.sock", None, None)),
    (["socat", "TCP-LISTEN:5900", "UNIX-CONNECT:../x/h.sock"], "/a/b",
     (5900, None, None, False, "unix", "/a/x/h.sock", None, None)),
    (["socat", "TCP-LISTEN:5900", "UNIX-CONNECT:/tmp/with space/héllo ☃ [/x].sock"], None,
     (5900, None, None, False, "unix", "/tmp/with space/héllo ☃ [/x].sock", None, None)),
    (["socat", "TCP-LISTEN:5900", "ABSTRACT-CONNECT:helix"], "/a/b",
     (5900, None, None, False, "abstract", "helix", None, None)),
    (["socat", "TCP-LISTEN:5900", "TCP:[::1]:15937"], None,
     (5900, None, None, False, "tcp", None, "::1", 15937)),
    (["socat", "UNIX-CONNECT:/tmp/h.sock", "TCP-LISTEN:5900,fork"], None,
     (5900, None, None, True, "unix", "/tmp/h.sock", None, None)),
    (["socat", "-", "TCP-LISTEN:5900"], None,
     (5900, None, None, False, "stdio", None, None, None)),
    (["socat", "TCP-LISTEN:5900", "EXEC:cat"], None,
     (5900, None, None, False, "exec", None, None, None)),
    (["socat", "UNIX-LISTEN:/tmp/h.sock,fork", "TCP:127.0.0.1:5900"], None,
     (None, None, None, True, "tcp", None, "127.0.0.1", 5900)),
]


@pytest.mark.parametrize(("argv", "cwd", "expected"), ODD_SOCAT, ids=[" ".join(a[1:])[:60] for a, _, _ in ODD_SOCAT])
def test_socat_odd_addresses_parse_to_what_socat_would_do(argv, cwd, expected):
    c = parse_socat_cmdline(argv, cwd=cwd)
    assert (c.listen_port, c.bind, c.ip_version, c.fork, c.target_kind, c.target_path, c.target_host,
            c.target_port) == expected


@pytest.mark.parametrize(("argv", "message"), [
    (["socat", "TCP-LISTEN: 5900", "UNIX:/tmp/h.sock"], "not a number"),
    (["socat", "TCP-LISTEN:５９００", "UNIX:/tmp/h.sock"], "not a number"),  # full-width digits
    (["socat", "TCP-LISTEN:65536", "UNIX:/tmp/h.sock"], "not a number"),
    (["socat", "TCP-LISTEN:5900", "TCP:localhost:vnc"], "not a number"),
    (["socat", "TCP-LISTEN:5900", "UNIX-CONNECT:/tmp/h.sock", "EXTRA:1"], "two addresses"),
    (["socat", "TCP-LISTEN:5900", "UNIX-CONNECT:'/tmp/h.sock'"], "quotes"),
    (["socat", "TCP-LISTEN:5900", "UNIX-CONNECT:/tmp/\u201ch\u201d.sock"], "quotes"),
])
def test_socat_odd_addresses_that_cannot_be_read_are_parse_errors(argv, message):
    with pytest.raises(ParseError, match=message):
        parse_socat_cmdline(argv)


def test_socat_huge_command_lines_parse_in_bounded_time():
    started = time.monotonic()
    long_path = "/x" * 500_000
    c = parse_socat_cmdline(["socat", *["-d"] * 100_000, "TCP-LISTEN:5900,fork", f"UNIX-CONNECT:{long_path}"])
    assert c.target_path == long_path and c.listen_port == 5900
    with pytest.raises(ParseError):
        parse_socat_cmdline(["socat", *["x"] * 100_000])
    # ps output: one long string split on whitespace, pieces rejoined.
    c = parse_socat_cmdline("socat TCP-LISTEN:5900 UNIX-CONNECT:/tmp/" + " a" * 50_000)
    assert c.rejoined_whitespace and c.target_path.startswith("/tmp/ a a")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("argv", [
    ["socat", "TCP-LISTEN:5900", "UNIX-CONNECT:/tmp/héllo ☃ [/x].sock"],
    ["socat", "TCP-LISTEN:5900", "UNIX-CONNECT:" + "/x" * 200],  # over the sun_path limit
    ["socat", "TCP-LISTEN:5900", "UNIX-CONNECT:/dev/null"],
    ["socat", "TCP-LISTEN:5900", "EXEC:cat"],
    ["socat", "TCP-LISTEN:0", "ABSTRACT-CONNECT:x"],
    ["socat", "TCP-LISTEN:vnc", "UNIX-CONNECT:/tmp/h.sock"],  # unparsable
    ["socat"],
], ids=["unicode-markup", "too-long", "not-a-socket", "exec", "port-0-abstract", "unparsable", "bare"])
def test_probes_judge_a_running_socat_with_odd_addresses_without_crashing(argv):
    """The socat and unix-socket probes, with this machine's process list replaced by one
    socat with that command line."""
    cfg = resolve({"side": "host", "host": "127.0.0.1", "timeout": 0.5}, env={})
    work = runner.Runner(cfg, runner.select(["socat", "unix-socket"], False), explicit={"socat", "unix-socket"})
    work.ctx.obs.__dict__["processes"] = [
        ProcInfo(pid=2**22 + 17, name="socat", exe="/usr/bin/socat", argv=tuple(argv), cwd="/nonexistent", started=None)
    ]
    doc = work.run().to_dict()
    crashed = [(p["id"], p["summary"]) for p in doc["probes"] if p["status"] == "error"]
    assert not crashed, crashed
    assert doc["topology"]["kind"] == "socat"


# ------------------------------------------------------------------------ pipelines

HOSTILE_PIPELINES = [
    'videotestsrc ! vsockenc tcp-host="10.0.2.2\\" ! fakesink" tcp-port=15937',
    "videotestsrc ! vsockenc socket-path='/tmp/a b'\\''c.sock'",
    'videotestsrc ! vsockenc tcp-host=\\"10.0.2.2\\"',
    'videotestsrc ! vsockenc tcp-host="',
    "videotestsrc ! vsockenc tcp-host='",
    'videotestsrc ! video/x-raw,format="(string)NV12\\" ! vsockenc',
    "videotestsrc ! video/x-raw,format=(string){ NV12, \"BGRx\" } ! vsockenc",
    "videotestsrc ! vsockenc tcp-host=\x00\x1b[2J\x07 ! fakesink",
    "videotestsrc ! vsockenc tcp-host=[/x] tcp-port=[b]",
    "videotestsrc name=[/x] ! [/x]. ! vsockenc",
    "gst-launch-1.0 -v videotestsrc ! 'video/x-raw,format=NV12' ! vsockenc tcp-port=\"41937\"",
    "\\\\\\\\ ! \\ ! \\",
    "vsockenc " + " ".join(f'p{i}="v\\"{i}"' for i in range(3000)),  # a 64 KiB log line's worth
    "videotestsrc ! " + " ! ".join(["queue"] * 3000) + " ! vsockenc",
]


@pytest.mark.parametrize("text", HOSTILE_PIPELINES, ids=range(len(HOSTILE_PIPELINES)))
def test_hostile_pipeline_strings_lint_or_are_syntax_errors_quickly(text):
    started = time.monotonic()
    try:
        result = pipeline.lint(text, host="10.0.2.2", port=15937)
    except pipeline.PipelineSyntaxError as exc:
        assert str(exc)
    else:
        assert result.status in ("pass", "warn", "fail")
        if result.corrected is not None:
            pipeline.parse(result.corrected)  # a correction is valid syntax itself
    assert time.monotonic() - started < 3


def test_cli_lint_prints_markup_from_the_pipeline_as_text():
    for text in ("videotestsrc ! vsockenc tcp-host=[/x] tcp-port=[b]", "videotestsrc name=[/x] ! [bold]. ! vsockenc",
                 'videotestsrc ! vsockenc tcp-host="[/x]'):
        proc = run_cli("lint", text, "--port", "15937")
        out = assert_clean_exit(proc, (0, 1, 2))
        assert "[/x]" in out or "[bold]" in out, out


# ------------------------------------------------------------------------------ logs

CONNECT_FAILED = ("0:00:34.030671437   333 0xe7a330000c00 ERROR vsockenc gstvsockenc.c:322:gst_vsockenc_connect:"
                  "<vsockenc0> Failed to connect to 10.0.2.2:5900: ")
NOT_CONNECTED = ("0:00:34.062171437   333 0xe7a330000c00 ERROR vsockenc gstvsockenc.c:671:gst_vsockenc_handle_frame:"
                 "<vsockenc0> Not connected to host encoder")


def hostile_log(path: Path) -> Path:
    """Lines that match a signature, carrying console markup, terminal escapes, NULs, invalid
    UTF-8 and absurd numbers; junk between them; CRLF and lone CR line ends."""
    lines = [
        CONNECT_FAILED.encode() + b"Connection refused [/x] [bold red]X[/] \x1b]52;c;aGk=\x1b\\ \x1b[2J \x00 \xed\xa0\x80\xff",
        NOT_CONNECTED.encode() + b" \x1b[31m[/]\\",
        b"\x00" * 100 + b"\x1b[?1049h" + bytes(range(256)),
        CONNECT_FAILED.replace("5900", "99999999999999999999999999").encode() + b"Connection refused\r",
        NOT_CONNECTED.encode() + b"\r\n" + NOT_CONNECTED.encode() + b"\rjunk",
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_log_with_hostile_matched_lines_is_scanned_and_printed_without_a_crash(tmp_path):
    path = hostile_log(tmp_path / "hostile.log")
    summary = logscan.scan_file(path)
    assert isinstance(summary, logscan.GstLogSummary)
    assert summary.internal_errors == 0 and summary.binary_lines >= 2
    assert "vsockenc-connect-failed" in {f.failure_id for f in summary.findings}
    proc = run_cli("logs", str(path))
    out = assert_clean_exit(proc, (1,))
    assert "[/x]" in out  # printed as text, not taken for markup
    proc = run_cli("logs", str(path), "--json", "-")
    assert_clean_exit(proc, (1,))
    assert "\x1b" not in proc.stdout  # JSON escapes control characters


def test_log_text_reaches_the_terminal_without_control_characters(tmp_path):
    path = hostile_log(tmp_path / "hostile.log")
    messages = [f.message for f in logscan.scan_file(path).findings]
    proc = run_cli("logs", str(path))
    assert_clean_exit(proc, (1,))
    assert not CONTROL.search(proc.stdout + proc.stderr), repr(CONTROL.findall(proc.stdout))
    assert not any(CONTROL.search(m) for m in messages), messages
