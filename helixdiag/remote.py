"""Run the guest side somewhere else and bring its report back.

`--guest "ssh ubuntu@helix-vm"` (or `docker exec -i NAME`, `ssh vm docker exec -i NAME`,
`utmctl exec …`, `env` for this machine) is a command prefix that runs a command on the
guest. We run `PREFIX sh -s` and feed a small POSIX script on its standard input, so the
same thing works whether the prefix hands us a login shell (ssh) or execs directly
(docker exec). The script runs `helixdiag run --side guest --json -` there and frames its
output with markers; we parse the JSON report — never scraped text.

pexpect drives it through a pty so that prompts are seen: a password or host-key question
fails at once with a clear message instead of waiting for input nobody will type. Every
step has a timeout.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import select
import shlex
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pexpect

from helixdiag.errors import ConfigError

BEGIN, JSON_END, END, MISSING = "HXD-BEGIN", "HXD-JSON-END", "HXD-END", "HXD-MISSING"
NO_PYTHON, OLD_PYTHON, AGENT = "HXD-NO-PYTHON", "HXD-OLD-PYTHON", "HXD-AGENT"


def install_hint() -> str:
    """How to put helixdiag on a guest, as it really works: it is not published on PyPI, so
    build a wheel from a checkout (this one, when helixdiag runs from it), copy it over and
    install it with pip; its dependencies come from PyPI. The guest script then finds it as
    `helixdiag` or `python3 -m helixdiag`."""
    from helixdiag import __version__

    wheel = f"helixdiag-{__version__}-py3-none-any.whl"
    here = Path(__file__).resolve().parent.parent
    checkout = shlex.quote(str(here)) if (here / "pyproject.toml").is_file() else "CHECKOUT"
    return (f"build a wheel here: python3 -m pip wheel --no-deps -w dist {checkout} ; copy "
            f"dist/{wheel} to the guest and run there: python3 -m pip install --user ./{wheel} "
            "(add --break-system-packages if pip refuses with externally-managed-environment)")


INSTALL_HINT = install_hint()

PROMPTS = [
    (re.compile(r"(?i)password[^\n]*:\s*$"), "the remote asks for a password; use key-based login (ssh-copy-id) or an agent"),
    (re.compile(r"(?i)passphrase[^\n]*:\s*$"), "the remote asks for a key passphrase; load the key into ssh-agent first"),
    (re.compile(r"(?i)are you sure you want to continue connecting"), "ssh asks to accept an unknown host key; connect once by hand (or add it to known_hosts)"),
    (re.compile(r"(?i)\[sudo\] password"), "the remote asks for a sudo password"),
]

# Through a pty `sh -s` may think it is interactive and print prompts: silence them first.
# Which helixdiag runs there: the guest's own (installed), or the guest agent (builtin: the
# Python program of helixdiag.agent.payload, fed to `python3 -I -` from a here-document).
SCRIPT = """\
PS1=''; PS2=''; export PS1 PS2
echo {begin}
mode={mode}
if [ "$mode" != builtin ] && command -v helixdiag >/dev/null 2>&1; then set -- helixdiag
elif [ "$mode" != builtin ] && python3 -m helixdiag --version >/dev/null 2>&1; then set -- python3 -m helixdiag
elif [ "$mode" = installed ]; then echo {missing}; echo {end}; exit 0
elif command -v python3 >/dev/null 2>&1; then set -- builtin
else echo {no_python}; echo {end}; exit 0; fi
echo "{agent} $1"
err=$(mktemp 2>/dev/null || echo /tmp/hxd-remote-err.$$)
if [ "$1" = builtin ]; then python3 -I - 2>"$err" <<'HXD-PROGRAM'
{program}
HXD-PROGRAM
else "$@" run --side guest --json - {args} 2>"$err"; fi
rc=$?
echo
echo "{json_end} $rc"
sed 's/^/HXD-ERR /' "$err"; rm -f "$err"
echo {end}
"""
NO_PYTHON_HINT = ("install python3 there (Debian/Ubuntu: apt-get install python3-minimal), or install helixdiag "
                  "there and use --guest-agent installed")


@dataclass
class RemoteResult:
    prefix: str
    report: dict[str, Any] | None
    exit_code: int | None
    stderr: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    agent: str = "installed"  # which helixdiag answered: installed, or builtin (the guest agent)
    place: str = "guest"  # the place's name (`--guest NAME=PREFIX`)


class RemoteError(ConfigError):
    """The guest side could not be run; the message says why and what to do."""


def build_script(args: list[str], *, mode: str = "installed", program: str = "") -> str:
    """The script for `PREFIX sh -s`. `program` (the guest agent) is needed unless mode is installed."""
    return SCRIPT.format(begin=BEGIN, missing=MISSING, end=END, json_end=JSON_END, no_python=NO_PYTHON,
                         agent=AGENT, mode=mode, program=program, args=" ".join(shlex.quote(a) for a in args))


def run_guest(prefix: str, args: list[str], *, connect_timeout: float = 20.0, run_timeout: float = 90.0,
              mode: str = "installed", program: str = "") -> RemoteResult:
    """Run the guest probes through `prefix`; raises RemoteError with a clear reason.

    `run_timeout` bounds the whole of it (sending, connecting, the run, reading back);
    `connect_timeout` bounds the wait for the first sign of life within that."""
    argv = shlex.split(prefix)
    if not argv:
        raise RemoteError("--guest needs a command prefix, e.g. --guest 'ssh ubuntu@helix-vm'")
    started = time.monotonic()
    deadline = started + run_timeout
    try:
        child = pexpect.spawn(argv[0], [*argv[1:], "sh", "-s"], encoding="utf-8",
                              codec_errors="replace", echo=False, timeout=connect_timeout,
                              dimensions=(24, 500))
    except pexpect.ExceptionPexpect as exc:
        raise RemoteError(f"cannot start {argv[0]!r}: {exc}") from None
    try:
        # The script, then end-of-file, both written without blocking: a guest that ended (no
        # python3) or hangs reads nothing, and a blocking write to its full pty never returns.
        _send(child, build_script(args, mode=mode, program=program), prefix, deadline, end=_eof_char(child))
        patterns = [p for p, _ in PROMPTS] + [re.compile(BEGIN), pexpect.EOF, pexpect.TIMEOUT]
        wait = max(0.0, min(connect_timeout, deadline - time.monotonic()))
        index = child.expect(patterns, timeout=wait)
        if index < len(PROMPTS):
            raise RemoteError(f"{prefix}: {PROMPTS[index][1]}")
        if patterns[index] is pexpect.EOF:
            raise RemoteError(f"{prefix}: the command ended before the guest script ran: "
                              f"{_last_words(child.before)}")
        if patterns[index] is pexpect.TIMEOUT:
            raise RemoteError(f"{prefix}: no answer within {wait:g} s "
                              f"(last output: {_last_words(child.before)})")
        index = child.expect([re.compile(MISSING), re.compile(NO_PYTHON), re.compile(JSON_END + r" (\d+)"),
                              pexpect.EOF, pexpect.TIMEOUT], timeout=max(0.0, deadline - time.monotonic()))
        if index == 0:
            raise RemoteError(f"helixdiag is not installed on the guest ({prefix})", hint=INSTALL_HINT)
        if index == 1:
            raise RemoteError(f"the guest has no python3 for the guest agent ({prefix})", hint=NO_PYTHON_HINT)
        if index in (3, 4):
            what = "ended" if index == 3 else f"did not finish within {run_timeout:g} s (--guest-timeout)"
            raise RemoteError(f"{prefix}: the guest run {what} (last output: {_last_words(child.before)})")
        body = child.before
        exit_code = int(child.match.group(1))
        child.expect([re.compile(END), pexpect.EOF, pexpect.TIMEOUT],
                     timeout=max(0.0, min(10.0, deadline - time.monotonic())))
        stderr = [line[len("HXD-ERR "):].rstrip("\r") for line in child.before.splitlines()
                  if line.startswith("HXD-ERR ")]
    finally:
        child.close(force=True)
    agent, body = _agent_line(body)
    old = re.search(OLD_PYTHON + r" (\S+)", body)
    if old:
        raise RemoteError(f"{prefix}: the guest's python3 is {old.group(1)}; the guest agent needs 3.8 or newer",
                          hint=NO_PYTHON_HINT)
    report = _parse_report(body, exit_code, stderr, prefix)
    return RemoteResult(prefix, report, exit_code, stderr, time.monotonic() - started, agent)


def _eof_char(child: pexpect.spawn) -> bytes:
    """The pty's end-of-file character (what pexpect's sendeof writes), at the start of a line."""
    try:
        return b"\n" + termios.tcgetattr(child.child_fd)[6][termios.VEOF]
    except (termios.error, OSError, TypeError):
        return b"\n\x04"


def _send(child: pexpect.spawn, text: str, prefix: str, deadline: float, end: bytes = b"") -> None:
    """Write the script (and `end`) into the pty without ever blocking past `deadline`: a
    prefix that hangs reads nothing, and a pty holds only a few kilobytes. What the remote
    prints meanwhile is read (a password prompt fails at once) and handed back to pexpect."""
    fd, data, seen = child.child_fd, memoryview(text.encode("utf-8") + end), ""
    os.set_blocking(fd, False)
    try:
        while data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RemoteError(f"{prefix}: the guest did not take the script within the --guest-timeout "
                                  f"(last output: {_last_words(seen)})")
            readable, writable, _ = select.select([fd], [fd], [], min(remaining, 0.25))
            if readable:
                with contextlib.suppress(pexpect.TIMEOUT, pexpect.EOF):
                    seen += child.read_nonblocking(65536, timeout=0)
                for pattern, why in PROMPTS:
                    if pattern.search(seen):
                        raise RemoteError(f"{prefix}: {why}")
                if child.eof() or not child.isalive():
                    break  # it ended: expect() reports how
            if writable:
                with contextlib.suppress(BlockingIOError):
                    data = data[os.write(fd, data[:4096]):]
    except OSError as exc:  # EIO: the other side closed the pty
        if exc.errno != errno.EIO:
            raise
    finally:
        os.set_blocking(fd, True)
    child.buffer = seen + child.buffer


def _agent_line(body: str) -> tuple[str, str]:
    m = re.search(AGENT + r" (\S+)", body)
    if m is None:
        return "installed", body
    return ("builtin" if m.group(1) == "builtin" else "installed"), body[m.end():]


def _parse_report(body: str, exit_code: int, stderr: list[str], prefix: str) -> dict[str, Any]:
    text = body.replace("\r\n", "\n").strip()
    start = text.find("{")
    if start < 0:
        why = "; ".join(stderr[-3:]) or "no output"
        raise RemoteError(f"{prefix}: the guest run printed no report (exit {exit_code}): {why}")
    try:
        report, _ = json.JSONDecoder().raw_decode(text[start:])  # ignore anything after it
    except json.JSONDecodeError as exc:
        raise RemoteError(f"{prefix}: the guest's report is not valid JSON ({exc}); is its helixdiag too old?") from None
    if not isinstance(report, dict) or report.get("schema") != "helixdiag.report/v1":
        raise RemoteError(f"{prefix}: the guest answered with something other than a helixdiag.report/v1")
    return report


def _last_words(text: object) -> str:
    if not isinstance(text, str):
        return "nothing"
    lines = [ln.strip() for ln in text.replace("\r", "").splitlines() if ln.strip()]
    return " | ".join(lines[-3:])[:300] or "nothing"
