"""`otool -L` output (macOS): the dylibs a binary loads, sorted by where they come from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from helixdiag.observe.parsers.common import (
    ParseError,
    as_text,
)

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
    without repeats: what a sandboxed UTM may refuse to load (docs/failures/qemu-dylib-sysroot.md).
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
    for line in as_text(text).splitlines():
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
