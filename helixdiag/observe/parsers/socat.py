"""socat command lines: the listening address, the target, and what a relative target means.

`ps` joins argv with single spaces and does not quote, so a path with a space ("Group
Containers") comes back split: the parser rejoins such pieces and says so in
`rejoined_whitespace`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass

from helixdiag.observe.parsers.common import (
    DIGITS,
    ParseError,
    as_argv,
    basename,
    port_or_none,
)

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
    (docs/failures/socat-wrong-target.md); `target_path_as_written` keeps the original. `bind` None = all addresses.
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
    port = port_or_none(value)
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
    elif not colon and DIGITS.fullmatch(keyword):
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
        if ":" not in item and "," not in item and basename(item) == "socat":
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
    args = _socat_arguments(as_argv(argv))
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
        listen_port = port_or_none(listen.params[0])
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
        target_port = port_or_none(target.params[1])

    return SocatConfig(
        argv=tuple(as_argv(argv)),
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
