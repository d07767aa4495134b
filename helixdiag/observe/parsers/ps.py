"""`ps` output with a header line: pid, start time, and the command line."""

from __future__ import annotations

import re
from dataclasses import dataclass

from helixdiag.observe.parsers.common import (
    as_text,
    int_or_none,
)


@dataclass(frozen=True)
class PsEntry:
    """One process from `ps`. `command` is the command line as ps prints it (argv joined by
    spaces, unquoted). `started` is the raw start-time text (lstart, START, STIME)."""

    pid: int
    command: str
    ppid: int | None = None
    user: str | None = None
    started: str | None = None

    @property
    def argv(self) -> tuple[str, ...]:
        """The command split on whitespace (paths with spaces come back in pieces)."""
        return tuple(self.command.split())

    @property
    def executable(self) -> str | None:
        parts = self.command.split(None, 1)
        return parts[0] if parts else None


_PS_LSTART = re.compile(
    r"^\s*(?P<pid>[0-9]+)\s+(?:(?P<ppid>[0-9]+)\s+)?"
    r"(?P<started>\S+\s+\S+\s+\S+\s+[0-9]{1,2}:[0-9]{2}:[0-9]{2}\s+[0-9]{4})\s+(?P<command>\S.*)$"
)
_PS_PID_PPID = re.compile(r"^\s*(?P<pid>[0-9]+)\s+(?P<ppid>[0-9]+)\s+(?P<command>\S.*)$")
_PS_PID = re.compile(r"^\s*(?P<pid>[0-9]+)\s+(?P<command>\S.*)$")
_PS_COMMAND_COLUMNS = frozenset({"COMMAND", "CMD", "ARGS"})
_PS_START_COLUMNS = frozenset({"START", "STARTED", "STIME", "LSTART"})
_PS_USER_COLUMNS = frozenset({"USER", "UID", "RUSER"})


def _ps_header(line: str) -> list[str] | None:
    tokens = line.split()
    is_header = len(tokens) >= 2 and "PID" in tokens and tokens[-1] in _PS_COMMAND_COLUMNS
    if is_header and all(token.upper() == token for token in tokens):
        return tokens
    return None


def _ps_with_header(line: str, header: list[str]) -> PsEntry | None:
    parts = line.split(None, len(header) - 1)
    if len(parts) != len(header):
        return None
    row = dict(zip(header, parts))  # noqa: B905 - lengths checked above; no strict= on 3.8 (guest agent)
    pid = int_or_none(row.get("PID"))
    if pid is None:
        return None
    user = next((row[c] for c in header if c in _PS_USER_COLUMNS), None)
    started = next((row[c] for c in header if c in _PS_START_COLUMNS), None)
    return PsEntry(pid=pid, command=parts[-1].rstrip(), ppid=int_or_none(row.get("PPID")), user=user, started=started)


def parse_ps_lines(text: str | bytes) -> list[PsEntry]:
    """Parse `ps` output: `ps -axo pid=,ppid=,lstart=,command=` (header-less, macOS or Linux),
    `ps -axo pid=,ppid=,command=`, `ps aux`, `ps -ef` or any `-o` list with a header whose
    last column is COMMAND/CMD/ARGS. Unreadable lines are skipped."""
    entries: list[PsEntry] = []
    header: list[str] | None = None
    for line in as_text(text).splitlines():
        if not line.strip():
            continue
        found = _ps_header(line)
        if found is not None:
            header = found
            continue
        entry = None
        match = _PS_LSTART.match(line)
        if match is not None:
            entry = PsEntry(
                pid=int(match.group("pid")),
                command=match.group("command").rstrip(),
                ppid=int_or_none(match.group("ppid")),
                started=" ".join(match.group("started").split()),
            )
        if entry is None and header is not None:
            entry = _ps_with_header(line, header)
        if entry is None and header is None:
            match = _PS_PID_PPID.match(line) or _PS_PID.match(line)
            if match is not None:
                groups = match.groupdict()
                entry = PsEntry(
                    pid=int(groups["pid"]),
                    command=groups["command"].rstrip(),
                    ppid=int_or_none(groups.get("ppid")),
                )
        if entry is not None:
            entries.append(entry)
    return entries
