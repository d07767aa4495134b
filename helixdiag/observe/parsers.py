"""Pure parsers for host observations (SPEC.md §2, layers `socat`, `unix-socket`, `qemu`).

Each function turns text that a caller captured from a real tool (or an argv list) into frozen
dataclasses. Nothing here runs a command or touches the file system: the caller runs the tool with
a timeout and passes its stdout in.

Error policy: parsing is tolerant. Lines a parser cannot read are skipped, because real tools
vary by OS and version (macOS vs Linux lsof, ps column sets). Input that cannot mean anything
(an otool error message, a socat address with no port) raises `ParseError`, a `ValueError`.
No other exception escapes these functions, whatever the input.

Quirks seen in the recordings under tests/recordings/ and handled here:

* Linux lsof cuts a Unix socket's name at its first whitespace (it reads /proc/net/unix), so
  "/x/Group Containers/helix-frame-export.sock" shows up as "/x/Group". `LsofEntry.matches_unix_path`
  accepts that truncation.
* Linux `lsof <socket path>` prints nothing even while a process listens on that path; only
  `lsof -U` (or /proc/net/unix) shows it. macOS lsof does match a socket by path.
* `ps` joins argv with single spaces and does not quote, so a path with a space
  ("Group Containers", FAILURES.md #27) comes back split. The socat and QEMU parsers rejoin such
  pieces and say so in `rejoined_whitespace`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "LsofEntry",
    "OtoolDep",
    "OtoolDeps",
    "ParseError",
    "PsEntry",
    "QemuConfig",
    "QemuDevice",
    "SocatAddress",
    "SocatConfig",
    "parse_lsof_fields",
    "parse_lsof_table",
    "parse_otool_L",
    "parse_ps_lines",
    "parse_qemu_cmdline",
    "parse_socat_cmdline",
]


class ParseError(ValueError):
    """The input cannot be read as the tool output (or command line) it is supposed to be."""


# --------------------------------------------------------------------------- small helpers

_DIGITS = re.compile(r"[0-9]+")
_PORT = re.compile(r"[0-9]{1,5}")


def _as_text(text: object) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, bytes | bytearray):
        return bytes(text).decode("utf-8", errors="replace")
    raise ParseError(f"expected text, got {type(text).__name__}")


def _as_argv(argv: object) -> list[str]:
    """An argv list of str. A plain string is split on whitespace, as `ps` output would be."""
    if isinstance(argv, str):
        return argv.split()
    if not isinstance(argv, Sequence) or isinstance(argv, bytes | bytearray):
        raise ParseError(f"expected an argv list, got {type(argv).__name__}")
    out: list[str] = []
    for item in argv:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, bytes | bytearray):
            out.append(bytes(item).decode("utf-8", errors="replace"))
        else:
            raise ParseError(f"argv element {item!r} is not a string")
    return out


def _int_or_none(value: str | None) -> int | None:
    if value is None or not _DIGITS.fullmatch(value):
        return None
    return int(value)


def _port_or_none(value: str | None) -> int | None:
    if value is None or not _PORT.fullmatch(value):
        return None
    port = int(value)
    return port if port <= 65535 else None


def _split_hostport(text: str) -> tuple[str | None, int | None]:
    """`127.0.0.1:5900`, `*:5900`, `[::1]:5900`, `localhost:postgresql` -> (host, port or None)."""
    text = text.strip()
    if not text:
        return None, None
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            return text, None
        host, rest = text[1:end], text[end + 1 :]
        return (host or None), _port_or_none(rest[1:] if rest.startswith(":") else None)
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, None
    return (host or None), _port_or_none(port)


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


# --------------------------------------------------------------------------- lsof

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
            host, port = _split_hostport(local)
            set_(self, "local_address", host)
            set_(self, "local_port", port)
            if sep and remote.strip():
                set_(self, "remote", remote.strip())
                r_host, r_port = _split_hostport(remote)
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
        pid=_int_or_none(process.get("p")),
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
    lines = _as_text(text).replace("\x00", "\n").splitlines()
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
    for line in _as_text(text).splitlines():
        if not line.strip() or _LSOF_HEADER.match(line) or line.lstrip().startswith("lsof:"):
            continue
        entry = _lsof_table_line(line)
        if entry is not None:
            entries.append(entry)
    return entries


# --------------------------------------------------------------------------- otool -L

_SYSTEM_PREFIXES = ("/usr/lib/", "/System/Library/")
_PACKAGE_PREFIXES = ("/opt/homebrew/", "/usr/local/Cellar/", "/usr/local/opt/", "/usr/local/lib/", "/opt/local/")
_BUILD_PREFIXES = ("/Users/", "/tmp/", "/private/", "/var/folders/", "/Volumes/", "/home/")


def _dylib_kind(path: str) -> str:
    if path.startswith("@"):
        return "relative"
    if not path.startswith("/"):
        return "other"
    if path.startswith(_SYSTEM_PREFIXES):
        return "system"
    if path.startswith(_PACKAGE_PREFIXES):
        return "package"
    if path.startswith(_BUILD_PREFIXES) or "/sysroot" in path:
        return "build"
    return "other-absolute"


@dataclass(frozen=True)
class OtoolDep:
    """One line of `otool -L`. `kind`: system (/usr/lib, /System/Library), relative (@rpath,
    @executable_path, @loader_path), package (Homebrew/MacPorts prefixes), build (a home
    directory, /tmp, /Volumes or a sysroot), other-absolute, other (not a path at all)."""

    path: str
    compatibility_version: str | None = None
    current_version: str | None = None
    flags: tuple[str, ...] = ()
    architecture: str | None = None
    kind: str = field(init=False, default="other")

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _dylib_kind(self.path))


@dataclass(frozen=True)
class OtoolDeps:
    """`otool -L BINARY`: the binary named in the header line and its load commands.

    `suspicious_paths` are the absolute paths outside /usr/lib and /System/Library, in order and
    without repeats: what a sandboxed UTM may refuse to load (FAILURES.md #32).
    """

    binary: str | None
    deps: tuple[OtoolDep, ...]
    architectures: tuple[str, ...] = ()
    suspicious_paths: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        seen: dict[str, None] = {}
        for dep in self.deps:
            if dep.kind in ("package", "build", "other-absolute"):
                seen.setdefault(dep.path, None)
        object.__setattr__(self, "suspicious_paths", tuple(seen))

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(dep.path for dep in self.deps)

    def paths_of_kind(self, kind: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(dep.path for dep in self.deps if dep.kind == kind))


_OTOOL_HEADER = re.compile(r"^(?P<path>\S.*?)(?: \(architecture (?P<arch>[^()]*)\))?:\s*$")
_OTOOL_DEP = re.compile(r"^\s+(?P<path>\S.*?)(?:\s+\((?P<info>[^()]*)\))?\s*$")


def _otool_dep(path: str, info: str | None, arch: str | None) -> OtoolDep:
    compat = current = None
    flags: list[str] = []
    for part in (info or "").split(","):
        part = part.strip()
        if part.startswith("compatibility version "):
            compat = part[len("compatibility version ") :].strip() or None
        elif part.startswith("current version "):
            current = part[len("current version ") :].strip() or None
        elif part:
            flags.append(part)
    return OtoolDep(path, compat, current, tuple(flags), arch)


def parse_otool_L(text: str | bytes) -> OtoolDeps:  # noqa: N802 - named after `otool -L`
    """Parse `otool -L /path/binary`: a `path:` (or `path (architecture arm64):`) header, then
    tab-indented `dylib (compatibility version X, current version Y)` lines.

    Raises ParseError when nothing in the text is otool -L output (e.g. "is not an object file").
    """
    binary: str | None = None
    arch: str | None = None
    archs: list[str] = []
    deps: list[OtoolDep] = []
    other: list[str] = []
    for line in _as_text(text).splitlines():
        if not line.strip():
            continue
        if line[0] in " \t":
            dep = _OTOOL_DEP.match(line)
            if dep is not None:
                deps.append(_otool_dep(dep.group("path"), dep.group("info"), arch))
            continue
        header = _OTOOL_HEADER.match(line)
        if header is not None:
            if binary is None:
                binary = header.group("path")
            arch = header.group("arch")
            if arch:
                archs.append(arch)
            continue
        other.append(line.strip())
    if binary is None and not deps:
        detail = f": {other[0][:200]}" if other else ""
        raise ParseError(f"no otool -L output recognised{detail}")
    return OtoolDeps(binary=binary, deps=tuple(deps), architectures=tuple(archs))


# --------------------------------------------------------------------------- socat

_TCP_LISTEN = {"TCP-LISTEN": None, "TCP-L": None, "TCP4-LISTEN": 4, "TCP4-L": 4, "TCP6-LISTEN": 6, "TCP6-L": 6}
_TCP_CONNECT = {"TCP": None, "TCP-CONNECT": None, "TCP4": 4, "TCP4-CONNECT": 4, "TCP6": 6, "TCP6-CONNECT": 6}
_UNIX_CONNECT = frozenset({"UNIX-CONNECT", "UNIX", "UNIX-CLIENT"})
_UNIX_LISTEN = frozenset({"UNIX-LISTEN", "UNIX-L"})
_ABSTRACT = frozenset({"ABSTRACT-CONNECT", "ABSTRACT-CLIENT", "ABSTRACT"})
_BARE_KEYWORDS = frozenset({"STDIO", "STDIN", "STDOUT", "STDERR", "PIPE", "-"})
# socat options that take the next argument as their value when not attached (-b8192 / -b 8192)
_SOCAT_VALUE_OPTIONS = frozenset({"-b", "-t", "-T", "-L", "-W", "-lf", "-lp", "-S", "-r", "-R"})
_SOCAT_ADDRESS_START = re.compile(r"^(?:[0-9]+$|/|[A-Za-z][A-Za-z0-9_-]*[:,])")
_FALSE_WORDS = frozenset({"0", "no", "false", "off"})


@dataclass(frozen=True)
class SocatAddress:
    """One socat address `KEYWORD:param:param,option,option=value`.

    `kind` is canonical: tcp-listen, tcp, unix, unix-listen, abstract, stdio, fd, gopen, or the
    keyword in lower case for anything else (exec, system, open, ...).
    """

    raw: str
    keyword: str
    kind: str
    params: tuple[str, ...]
    options: tuple[tuple[str, str | None], ...]

    def option(self, name: str) -> str | None:
        """The value of option `name` (None when absent or given without a value)."""
        for key, value in self.options:
            if key == name:
                return value
        return None

    def has_option(self, name: str) -> bool:
        return any(key == name for key, _ in self.options)

    def flag(self, name: str) -> bool:
        """A boolean option: `fork`, `reuseaddr`, `reuseaddr=1` are true, `reuseaddr=0` false."""
        for key, value in self.options:
            if key == name:
                return value is None or value.strip().lower() not in _FALSE_WORDS
        return False


@dataclass(frozen=True)
class SocatConfig:
    """A socat command line. `listen` is the TCP (or Unix) listening address, `target` the other
    one. `target_path` is resolved against the cwd given to the parser when it was relative
    (FAILURES.md #27); `target_path_as_written` keeps the original. `bind` None = all addresses.
    """

    argv: tuple[str, ...]
    global_options: tuple[str, ...]
    listen: SocatAddress
    target: SocatAddress
    listen_port: int | None
    bind: str | None
    ip_version: int | None
    fork: bool
    reuseaddr: bool
    target_kind: str
    target_path: str | None
    target_path_as_written: str | None
    target_path_relative: bool
    target_host: str | None
    target_port: int | None
    rejoined_whitespace: bool = False

    @property
    def listen_kind(self) -> str:
        return self.listen.kind


def _split_colon_params(text: str) -> list[str]:
    """Split socat params on ':' outside [...] (IPv6 literals)."""
    parts: list[str] = []
    buf: list[str] = []
    depth = 0
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        if char == ":" and depth == 0:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(char)
    parts.append("".join(buf))
    return parts


def _strict_port(value: str, raw: str) -> int:
    if not value:
        raise ParseError(f"socat address {raw!r} has no port")
    port = _port_or_none(value)
    if port is None:
        raise ParseError(f"port {value!r} in socat address {raw!r} is not a number 0-65535")
    return port


def _strip_brackets(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _parse_socat_address(raw: str) -> SocatAddress:
    if any(char in raw for char in "\"'\\\u201c\u201d"):
        raise ParseError(
            f"socat address {raw!r} contains quotes or backslash escapes; "
            "they are not interpreted here (a shell should have removed them)"
        )
    if not raw:
        raise ParseError("empty socat address")
    head, _, option_text = raw.partition(",")
    keyword, colon, param_text = head.partition(":")
    options: list[tuple[str, str | None]] = []
    for item in option_text.split(",") if option_text else []:
        if not item:
            continue
        name, eq, value = item.partition("=")
        options.append((name.strip().lower(), value if eq else None))
    upper = keyword.upper()
    params: tuple[str, ...] = tuple(_split_colon_params(param_text)) if colon else ()
    if raw == "-" or upper in ("STDIO", "-"):
        kind = "stdio"
    elif not colon and _DIGITS.fullmatch(keyword):
        kind = "fd"
    elif keyword.startswith(("/", ".")):
        kind, upper, params = "gopen", "", (head,)
    elif upper in _TCP_LISTEN:
        kind = "tcp-listen"
    elif upper in _TCP_CONNECT:
        kind = "tcp"
    elif upper in _UNIX_CONNECT:
        kind = "unix"
    elif upper in _UNIX_LISTEN:
        kind = "unix-listen"
    elif upper in _ABSTRACT:
        kind = "abstract"
    else:
        kind = keyword.lower()
    address = SocatAddress(raw=raw, keyword=upper, kind=kind, params=params, options=tuple(options))
    _validate_socat_address(address)
    return address


def _validate_socat_address(address: SocatAddress) -> None:
    raw, params = address.raw, address.params
    if address.kind == "tcp-listen":
        if not params:
            raise ParseError(f"socat address {raw!r} has no port")
        if len(params) > 1:
            raise ParseError(f"socat address {raw!r} has more than one ':' parameter (expected {address.keyword}:PORT)")
        _strict_port(params[0], raw)
    elif address.kind == "tcp":
        if len(params) != 2:
            raise ParseError(f"socat address {raw!r} needs HOST:PORT")
        if not params[0]:
            raise ParseError(f"socat address {raw!r} has no host")
        _strict_port(params[1], raw)
    elif address.kind in ("unix", "unix-listen", "abstract"):
        if not params or not params[0]:
            raise ParseError(f"socat address {raw!r} has no socket path")
        if len(params) > 1:
            raise ParseError(
                f"socat address {raw!r} has a ':' inside the socket path; socat would need it escaped"
            )


def _looks_like_socat_address(piece: str) -> bool:
    return piece.upper() in _BARE_KEYWORDS or _SOCAT_ADDRESS_START.match(piece) is not None


def _socat_arguments(argv: list[str]) -> list[str]:
    for index, item in enumerate(argv):
        if ":" not in item and "," not in item and _basename(item) == "socat":
            return argv[index + 1 :]
    if argv and (argv[0].startswith("-") or _looks_like_socat_address(argv[0])):
        return argv
    raise ParseError(f"not a socat command line: {' '.join(argv)[:200]!r}")


def parse_socat_cmdline(argv: Sequence[str] | str, cwd: str | None = None) -> SocatConfig:
    """Parse a socat argv (program name optional; `timeout 60 socat ...` and `docker run ...
    socat ...` are found too). Options before the addresses (-d -d, -v, -lf FILE) are kept in
    `global_options`; address keywords are case-insensitive.

    A plain string is split on whitespace. More than two address pieces are taken to be one
    address that ps split at a space and are rejoined (`rejoined_whitespace`).
    Raises ParseError for anything that is not two readable addresses.
    """
    args = _socat_arguments(_as_argv(argv))
    if cwd is not None and not isinstance(cwd, str):
        raise ParseError(f"cwd must be a string, got {type(cwd).__name__}")
    index = 0
    global_options: list[str] = []
    while index < len(args):
        item = args[index]
        if item == "-" or not item.startswith("-"):
            break
        if item in _SOCAT_VALUE_OPTIONS:
            if index + 1 >= len(args):
                raise ParseError(f"socat option {item} needs a value")
            global_options.extend(args[index : index + 2])
            index += 2
            continue
        global_options.append(item)
        index += 1
    pieces = args[index:]
    rejoined = False
    if len(pieces) > 2:
        groups: list[str] = []
        for piece in pieces:
            if not groups or _looks_like_socat_address(piece):
                groups.append(piece)
            else:
                groups[-1] = f"{groups[-1]} {piece}"
        rejoined = len(groups) < len(pieces)
        pieces = groups
    if len(pieces) != 2:
        raise ParseError(f"socat needs exactly two addresses, found {len(pieces)}: {pieces[:4]!r}")
    first, second = (_parse_socat_address(piece) for piece in pieces)
    if first.kind == "tcp-listen" or (first.kind == "unix-listen" and second.kind != "tcp-listen"):
        listen, target = first, second
    elif second.kind in ("tcp-listen", "unix-listen"):
        listen, target = second, first
    else:
        listen, target = first, second

    listen_port = bind = ip_version = None
    if listen.kind == "tcp-listen":
        listen_port = _port_or_none(listen.params[0])
        ip_version = _TCP_LISTEN.get(listen.keyword)
        bind_value = listen.option("bind")
        if bind_value:
            bind_host = bind_value
            if not bind_value.startswith("[") and bind_value.count(":") == 1:
                bind_host = bind_value.partition(":")[0]
            elif bind_value.startswith("[") and "]" in bind_value:
                bind_host = bind_value[: bind_value.index("]") + 1]
            bind = _strip_brackets(bind_host) or None

    target_path = written = host = None
    target_port = None
    relative = False
    if target.kind in ("unix", "unix-listen", "abstract", "gopen"):
        written = target.params[0]
        target_path = written
        relative = target.kind != "abstract" and not written.startswith("/")
        if relative and cwd:
            target_path = posixpath.normpath(posixpath.join(cwd, written))
    elif target.kind == "tcp":
        host = _strip_brackets(target.params[0])
        target_port = _port_or_none(target.params[1])

    return SocatConfig(
        argv=tuple(_as_argv(argv)),
        global_options=tuple(global_options),
        listen=listen,
        target=target,
        listen_port=listen_port,
        bind=bind,
        ip_version=ip_version,
        fork=listen.flag("fork"),
        reuseaddr=listen.flag("reuseaddr"),
        target_kind=target.kind,
        target_path=target_path,
        target_path_as_written=written,
        target_path_relative=relative,
        target_host=host,
        target_port=target_port,
        rejoined_whitespace=rejoined,
    )


# --------------------------------------------------------------------------- QEMU

# QEMU options that never take a value. Anything else takes the next argument, except an
# unknown option followed by another option.
_QEMU_FLAGS = frozenset(
    {
        "S", "s", "nodefaults", "no-user-config", "nographic", "enable-kvm", "no-kvm", "snapshot",
        "daemonize", "no-reboot", "no-shutdown", "full-screen", "no-hpet", "no-acpi", "no-quit",
        "alt-grab", "ctrl-grab", "win2k-hack", "no-fd-bootchk", "usb", "preconfig", "version", "h",
        "help", "only-migratable", "enable-fips", "singlestep", "no-frame", "curses",
        "semihosting", "old-param", "enable-sync-profile", "rtc-td-hack", "localtime",
    }
)  # fmt: skip
_QEMU_VALUE_OPTIONS = frozenset(
    {
        "device", "drive", "spice", "display", "accel", "machine", "M", "m", "smp", "cpu", "L",
        "name", "uuid", "chardev", "mon", "netdev", "nic", "net", "qmp", "global", "serial", "vga",
        "boot", "bios", "kernel", "append", "initrd", "object", "audiodev", "rtc", "monitor",
        "vnc", "cdrom", "hda", "hdb", "fsdev", "virtfs", "incoming", "pidfile", "D", "d", "trace",
        "k", "overcommit", "sandbox", "msg", "action", "compat", "blockdev", "numa", "icount",
        "plugin", "run-with", "parallel", "debugcon", "gdb", "loadvm", "smbios", "fw_cfg", "iscsi",
        "tpmdev", "add-fd", "semihosting-config", "dtb", "mem-path", "watchdog-action", "usbdevice",
    }
)  # fmt: skip
_VIRTIO_GPU = re.compile(r"^virtio-(?:gpu|vga|ramfb)", re.IGNORECASE)


def _split_qemu_opts(text: str) -> list[tuple[str, str | None]]:
    """`driver,a=1,b=x,,y` -> [("driver", None), ("a", "1"), ("b", "x,y")] (",," is a comma)."""
    items: list[str] = []
    buf: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == ",":
            if index + 1 < len(text) and text[index + 1] == ",":
                buf.append(",")
                index += 2
                continue
            items.append("".join(buf))
            buf = []
        else:
            buf.append(char)
        index += 1
    items.append("".join(buf))
    pairs: list[tuple[str, str | None]] = []
    for item in items:
        if not item:
            continue
        name, eq, value = item.partition("=")
        pairs.append((name, value if eq else None))
    return pairs


@dataclass(frozen=True)
class QemuDevice:
    """A `-device DRIVER,prop=value,...` argument."""

    raw: str
    driver: str | None
    props: tuple[tuple[str, str | None], ...]

    def prop(self, name: str) -> str | None:
        for key, value in self.props:
            if key == name:
                return value
        return None

    @classmethod
    def parse(cls, raw: str) -> QemuDevice:
        pairs = _split_qemu_opts(raw)
        driver = None
        if pairs and pairs[0][1] is None:
            driver = pairs[0][0]
            pairs = pairs[1:]
        else:
            driver = next((value for key, value in pairs if key == "driver"), None)
        return cls(raw=raw, driver=driver, props=tuple(pairs))


@dataclass(frozen=True)
class QemuConfig:
    """A QEMU command line (`qemu-system-aarch64 ...`, or UTM's `QEMULauncher <framework binary>
    ...`). `options` lists every option in order as (name without dashes, value or None)."""

    argv: tuple[str, ...]
    launcher: str | None
    binary: str | None
    options: tuple[tuple[str, str | None], ...]
    positional: tuple[str, ...]
    devices: tuple[QemuDevice, ...]
    helix_port: int | None
    helix_port_raw: str | None
    helix_device: str | None
    virtio_gpu: str | None
    accel: tuple[str, ...]
    machine: str | None
    display: tuple[str, ...]
    spice: str | None
    spice_addr: str | None
    spice_gl: str | None
    rejoined_whitespace: bool = False

    @property
    def has_virtio_gpu(self) -> bool:
        return self.virtio_gpu is not None

    @property
    def virtio_gpu_gl(self) -> bool:
        return self.virtio_gpu is not None and "-gl" in self.virtio_gpu.lower()

    def option_values(self, name: str) -> tuple[str, ...]:
        return tuple(value for key, value in self.options if key == name and value is not None)


def parse_qemu_cmdline(argv: Sequence[str] | str) -> QemuConfig:
    """Parse a QEMU argv. Accepts `-opt value`, `--opt value` and `-opt=value`.

    `helix_port` comes from any `-device` value with `helix-port=N` (or `-global
    DRIVER.helix-port=N`). A plain string is split on whitespace (as `ps` shows it); a piece that
    follows an option's value without being an option is taken to be the rest of that value split
    at a space, and rejoined (`rejoined_whitespace`). Raises ParseError for an empty argv.
    """
    args = _as_argv(argv)
    if not args:
        raise ParseError("empty QEMU command line")
    launcher = binary = None
    index = 0
    if not args[0].startswith("-"):
        if "launcher" in _basename(args[0]).lower() and len(args) > 1 and not args[1].startswith("-"):
            launcher, binary, index = args[0], args[1], 2
        else:
            binary, index = args[0], 1
    options: list[tuple[str, str | None]] = []
    positional: list[str] = []
    rejoined = False
    last_valued: int | None = None
    while index < len(args):
        item = args[index]
        index += 1
        if item.startswith("-") and len(item) > 1 and item != "--":
            name = item.lstrip("-")
            value: str | None = None
            if "=" in name:
                name, _, value = name.partition("=")
            elif name in _QEMU_FLAGS:
                pass
            elif index < len(args) and (name in _QEMU_VALUE_OPTIONS or not args[index].startswith("-")):
                value = args[index]
                index += 1
            options.append((name, value))
            last_valued = len(options) - 1 if value is not None else None
        elif last_valued is not None:
            key, value = options[last_valued]
            options[last_valued] = (key, f"{value} {item}")
            rejoined = True
        else:
            positional.append(item)

    devices = tuple(QemuDevice.parse(value) for key, value in options if key == "device" and value)
    helix_raw = helix_device = None
    for device in devices:
        if device.prop("helix-port") is not None:
            helix_raw, helix_device = device.prop("helix-port"), device.driver
            break
    if helix_raw is None:
        for key, value in options:
            if key == "global" and value:
                target, _, setting = value.partition("=")
                if target.endswith(".helix-port"):
                    helix_raw, helix_device = setting, target.rpartition(".")[0]
                    break
    virtio_gpu = next(
        (device.driver for device in devices if device.driver and _VIRTIO_GPU.match(device.driver)), None
    )

    accel: list[str] = []
    machine = None
    for key, value in options:
        if key == "accel" and value:
            pairs = _split_qemu_opts(value)
            if pairs and pairs[0][1] is None:
                accel.append(pairs[0][0])
            else:
                accel.extend(v for k, v in pairs if k == "accel" and v)
        elif key in ("machine", "M") and value:
            pairs = _split_qemu_opts(value)
            if machine is None and pairs:
                machine = pairs[0][0] if pairs[0][1] is None else next((v for k, v in pairs if k == "type"), None)
            for k, v in pairs:
                if k == "accel" and v:
                    accel.extend(part for part in v.split(":") if part)
        elif key == "enable-kvm":
            accel.append("kvm")

    spice = next((value for key, value in options if key == "spice" and value), None)
    spice_pairs = dict(_split_qemu_opts(spice)) if spice else {}
    return QemuConfig(
        argv=tuple(args),
        launcher=launcher,
        binary=binary,
        options=tuple(options),
        positional=tuple(positional),
        devices=devices,
        helix_port=_port_or_none(helix_raw),
        helix_port_raw=helix_raw,
        helix_device=helix_device,
        virtio_gpu=virtio_gpu,
        accel=tuple(accel),
        machine=machine,
        display=tuple(value for key, value in options if key == "display" and value),
        spice=spice,
        spice_addr=spice_pairs.get("addr"),
        spice_gl=spice_pairs.get("gl"),
        rejoined_whitespace=rejoined,
    )


# --------------------------------------------------------------------------- ps


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
    row = dict(zip(header, parts, strict=True))
    pid = _int_or_none(row.get("PID"))
    if pid is None:
        return None
    user = next((row[c] for c in header if c in _PS_USER_COLUMNS), None)
    started = next((row[c] for c in header if c in _PS_START_COLUMNS), None)
    return PsEntry(pid=pid, command=parts[-1].rstrip(), ppid=_int_or_none(row.get("PPID")), user=user, started=started)


def parse_ps_lines(text: str | bytes) -> list[PsEntry]:
    """Parse `ps` output: `ps -axo pid=,ppid=,lstart=,command=` (header-less, macOS or Linux),
    `ps -axo pid=,ppid=,command=`, `ps aux`, `ps -ef` or any `-o` list with a header whose
    last column is COMMAND/CMD/ARGS. Unreadable lines are skipped."""
    entries: list[PsEntry] = []
    header: list[str] | None = None
    for line in _as_text(text).splitlines():
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
                ppid=_int_or_none(match.group("ppid")),
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
                    ppid=_int_or_none(groups.get("ppid")),
                )
        if entry is not None:
            entries.append(entry)
    return entries
