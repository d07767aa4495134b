"""`lsof` output, in the field format (`-F`) and as a table.

Quirks seen in the recordings under tests/recordings/:

* Linux lsof cuts a Unix socket's name at its first whitespace (it reads /proc/net/unix), so
  "/x/Group Containers/helix-frame-export.sock" shows up as "/x/Group".
  `LsofEntry.matches_unix_path` accepts that truncation.
* Linux `lsof <socket path>` prints nothing even while a process listens on that path; only
  `lsof -U` (or /proc/net/unix) shows it.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from helixdiag.observe.parsers.common import (
    as_text,
    int_or_none,
    split_hostport,
)

_INET_TYPES = frozenset({"IPV4", "IPV6", "INET", "INET6"})
_INET_PROTOCOLS = frozenset({"TCP", "UDP", "UDPLITE", "SCTP"})
_UNIX_TYPE_RE = re.compile(r"(?:^|\s)type=(\S+)")
# A NAME that reads as an Internet address, for output without a type field (`lsof -Fpn`).
_INET_NAME = re.compile(r"(?:\*|\[[0-9A-Fa-f:.%]*\]|[A-Za-z0-9._%-]+):(?:\*|[A-Za-z0-9_-]+)(?:->\S+)?")


def _split_unix_name(name: str) -> tuple[str | None, str | None, str | None]:
    """A Unix socket NAME -> (path, peer, socket type).

    macOS: `/path/x.sock`, `->0x1234abcd`. Linux: `/path type=STREAM`, `type=DGRAM`,
    `rel.sock type=STREAM`, with `+E` also `... ->INO=123 456,cmd,7u`.
    """
    socket_type = None
    before = name
    match = _UNIX_TYPE_RE.search(name)
    if match:
        socket_type = match.group(1)
        before = name[: match.start()]
    before = before.strip()
    peer = None
    if "->" in before:
        before, _, peer_text = before.partition("->")
        before = before.strip()
        peer = peer_text.strip() or None
    return (before or None), peer, socket_type


@dataclass(frozen=True)
class LsofEntry:
    """One open file of one process, from `lsof -F` or the `lsof` table.

    `state` is the raw state lsof reports (`TST=` in -F output, the `(LISTEN)` suffix in the
    table); Linux lsof reports Unix socket states (LISTEN, CONNECTED) there too. `tcp_state` is
    `state` for TCP sockets only. The remaining fields after `node` are derived from `name`.
    """

    pid: int | None
    command: str | None
    fd: str | None
    type: str | None
    protocol: str | None
    name: str | None
    state: str | None = None
    user: str | None = None
    device: str | None = None
    node: str | None = None
    tcp_state: str | None = field(init=False, default=None)
    local_address: str | None = field(init=False, default=None)
    local_port: int | None = field(init=False, default=None)
    remote: str | None = field(init=False, default=None)
    remote_address: str | None = field(init=False, default=None)
    remote_port: int | None = field(init=False, default=None)
    unix_path: str | None = field(init=False, default=None)
    unix_peer: str | None = field(init=False, default=None)
    unix_socket_type: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        kind = (self.type or "").upper()
        protocol = (self.protocol or "").upper()
        set_ = object.__setattr__
        inet = kind in _INET_TYPES or protocol in _INET_PROTOCOLS
        if not inet and not kind and self.name:
            inet = _INET_NAME.fullmatch(self.name) is not None
        if inet and self.name:
            local, sep, remote = self.name.partition("->")
            host, port = split_hostport(local)
            set_(self, "local_address", host)
            set_(self, "local_port", port)
            if sep and remote.strip():
                set_(self, "remote", remote.strip())
                r_host, r_port = split_hostport(remote)
                set_(self, "remote_address", r_host)
                set_(self, "remote_port", r_port)
            if protocol == "TCP":
                set_(self, "tcp_state", self.state)
        elif kind == "UNIX" and self.name:
            path, peer, socket_type = _split_unix_name(self.name)
            set_(self, "unix_path", path)
            set_(self, "unix_peer", peer)
            set_(self, "unix_socket_type", socket_type)

    @property
    def is_listening(self) -> bool:
        return (self.state or "").upper() == "LISTEN"

    def matches_unix_path(self, path: str, cwd: str | None = None) -> bool:
        """Whether this Unix socket entry is the socket at `path`.

        Accepts the two ways lsof misreports a path: a relative name (the process bound a
        relative path; resolved against `cwd` when given, else compared as a path suffix) and
        Linux's cut at the first whitespace.
        """
        mine = self.unix_path
        if not mine or not path:
            return False
        if not mine.startswith(("/", "@")):
            if cwd is None:
                return path == mine or path.endswith("/" + mine)
            mine = posixpath.normpath(posixpath.join(cwd, mine))
            path = posixpath.normpath(path)
        if path == mine:
            return True
        return path.startswith(mine) and len(path) > len(mine) and path[len(mine)].isspace()


_LSOF_PROCESS_FIELDS = frozenset("cgKLMRu")
_LSOF_FILE_FIELDS = frozenset("aCdDFGiklmnNoPrsStzZ")


def _lsof_entry(process: dict[str, str], file: dict[str, object]) -> LsofEntry | None:
    def get(key: str) -> str | None:
        value = file.get(key)
        return value if isinstance(value, str) and value != "" else None

    if get("f") is None and get("t") is None and get("n") is None:
        return None
    state = None
    tcp_info = file.get("T")
    if isinstance(tcp_info, list):
        for item in tcp_info:
            key, _, value = item.partition("=")
            if key == "ST" and value:
                state = value
    return LsofEntry(
        pid=int_or_none(process.get("p")),
        command=process.get("c") or None,
        fd=get("f"),
        type=get("t"),
        protocol=get("P"),
        name=get("n"),
        state=state,
        user=process.get("L") or process.get("u") or None,
        device=get("D"),
        node=get("i"),
    )


def parse_lsof_fields(text: str | bytes) -> list[LsofEntry]:
    """Parse `lsof -F` field output (e.g. `-F pcfnPtT`, also `-F0`), macOS or Linux.

    A `p` line starts a process, an `f` line starts one of its files; `T` lines (`TST=LISTEN`,
    `TQR=0`) belong to the current file. Files without an `f` field are split when a field
    repeats. Unknown field letters and empty lines are skipped. No output means no match: [].
    """
    lines = as_text(text).replace("\x00", "\n").splitlines()
    entries: list[LsofEntry] = []
    process: dict[str, str] = {}
    current: dict[str, object] | None = None

    def flush() -> None:
        nonlocal current
        if current is not None:
            entry = _lsof_entry(process, current)
            if entry is not None:
                entries.append(entry)
        current = None

    for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            continue
        key, value = line[0], line[1:]
        if key == "p":
            flush()
            process = {"p": value}
        elif key == "f":
            flush()
            current = {"f": value}
        elif key == "T":
            if current is None:
                current = {}
            tcp = current.setdefault("T", [])
            if isinstance(tcp, list):
                tcp.append(value)
        elif key in _LSOF_PROCESS_FIELDS and current is None:
            process[key] = value
        elif key in _LSOF_FILE_FIELDS:
            if current is None:
                current = {}
            elif key in current:
                flush()
                current = {}
            current[key] = value
    flush()
    return entries


_LSOF_HEADER = re.compile(r"^\s*COMMAND\s+PID\b")
_LSOF_LINE = re.compile(
    r"^\s*(?P<command>\S+)\s+(?P<pid>[0-9]+)\s+(?P<user>\S+)\s+(?P<fd>\S+)\s+(?P<type>\S+)(?:\s+(?P<rest>.*))?$"
)
_LSOF_STATE_SUFFIX = re.compile(r"\s\((?P<state>[A-Z][A-Z0-9_]*)\)$")
_LSOF_INET_REST = re.compile(
    r"^(?:(?P<device>\S+)\s+)?(?:(?P<size>\S+)\s+)?(?P<protocol>TCP|UDP|UDPLITE|SCTP|RAW|ICMP|ICMPV6)\s+(?P<name>\S.*)$"
)
_LSOF_OTHER_REST = re.compile(
    r"^(?P<device>\S+)\s+(?:(?P<size>0t[0-9]+|0x[0-9a-fA-F]+|[0-9]+)\s+)?(?:(?P<node>[0-9]+)\s+)?(?P<name>\S.*)$"
)


def _lsof_table_line(line: str) -> LsofEntry | None:
    match = _LSOF_LINE.match(line)
    if match is None:
        return None
    kind = match.group("type")
    rest = (match.group("rest") or "").rstrip()
    state = None
    inet = kind.upper() in _INET_TYPES
    if inet or kind.upper() == "UNIX":
        suffix = _LSOF_STATE_SUFFIX.search(rest)
        if suffix is not None:
            state = suffix.group("state")
            rest = rest[: suffix.start()].rstrip()
    device = protocol = node = name = None
    if inet:
        columns = _LSOF_INET_REST.match(rest)
        if columns is not None:
            device, protocol, name = columns.group("device"), columns.group("protocol"), columns.group("name")
        else:
            name = rest.split()[-1] if rest.split() else None
    else:
        other = _LSOF_OTHER_REST.match(rest)
        if other is not None:
            device, node, name = other.group("device"), other.group("node"), other.group("name")
        else:
            name = rest or None
    return LsofEntry(
        pid=int(match.group("pid")),
        command=match.group("command"),
        fd=match.group("fd"),
        type=kind,
        protocol=protocol,
        name=name,
        state=state,
        user=match.group("user"),
        device=device,
        node=node,
    )


def parse_lsof_table(text: str | bytes) -> list[LsofEntry]:
    """Parse lsof's human table (`lsof -nP -iTCP:5900 -sTCP:LISTEN`, `lsof <socket path>`).

    Columns: COMMAND PID USER FD TYPE DEVICE SIZE/OFF NODE NAME. macOS leaves NODE empty for Unix
    sockets and truncates COMMAND to 9 characters (`qemu-syst`, `QEMULaunc`); a trailing
    `(LISTEN)` becomes `state`. Header, warnings and unreadable lines are skipped.
    """
    entries: list[LsofEntry] = []
    for line in as_text(text).splitlines():
        if not line.strip() or _LSOF_HEADER.match(line) or line.lstrip().startswith("lsof:"):
            continue
        entry = _lsof_table_line(line)
        if entry is not None:
            entries.append(entry)
    return entries
