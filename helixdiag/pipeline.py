"""Parse and lint gst-launch pipeline strings against the rules of shared/PIPELINES.md.

`parse()` reads gst-launch syntax, following GStreamer's own lexer (gst/parse/parse.l) for
what these pipelines use: elements with `prop=value` (values may be quoted or escaped),
caps filters in links (`! video/x-raw(memory:DMABuf),format=(string)NV12 !`), `name=`
and references (`t. ! queue`), several chains, and a pasted `gst-launch-1.0 …` command
line. Anything malformed raises `PipelineSyntaxError` (a `UsageError`: exit 2, one line).

`lint()` checks the pipeline against the element-order and configuration rules that
PIPELINES.md §4/§5 and FAILURES.md #3–#8 and #21 record, returns the findings (every one
with a catalog id and the offending element) and a corrected pipeline where the fix is
mechanical. `vsockenc_properties()` / `vsockenc_endpoint()` let other probes reuse the
parse.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from helixdiag.errors import UsageError
from helixdiag.findings import Finding, worst_status
from helixdiag.protocol import PixelFormat, frame_layout

__all__ = [
    "Caps",
    "Element",
    "LintResult",
    "Pipeline",
    "PipelineSyntaxError",
    "Prop",
    "Ref",
    "Structure",
    "check_elements",
    "lint",
    "parse",
    "vsockenc_endpoint",
    "vsockenc_properties",
]

DEFAULT_HOST = "10.0.2.2"  # PIPELINES.md §2: defaultQEMUHost
DEFAULT_TCP_PORT = 15937  # PIPELINES.md §3: vsockenc's tcp-port default (= defaultQEMUPort)
DEFAULT_SIZE = (1920, 1080)  # PIPELINES.md §2.1: HEAD sends native 1080p

# PIPELINES.md §3: vsockenc's own properties and their defaults.
VSOCKENC_DEFAULTS: Mapping[str, Any] = {
    "socket-path": None,
    "cid": 2,
    "port": 5000,
    "tcp-host": None,
    "tcp-port": DEFAULT_TCP_PORT,
    "bitrate": 4_000_000,
    "keyframe-interval": 60,
}
_VSOCKENC_INT_PROPS = {"cid", "port", "tcp-port", "bitrate", "keyframe-interval"}
# Inherited from GstObject / GstVideoEncoder: valid on vsockenc, not its own.
_VSOCKENC_INHERITED = {"name", "parent", "qos", "min-force-key-unit-interval"}
# PIPELINES.md §3: vsockenc's sink caps.
VSOCKENC_FORMATS = ("BGRx", "BGRA", "RGBx", "RGBA", "NV12")
_RGB_FORMATS = {
    "BGRx": PixelFormat.BGRA8888,
    "BGRA": PixelFormat.BGRA8888,
    "RGBx": PixelFormat.RGBA8888,
    "RGBA": PixelFormat.RGBA8888,
}

PIPEWIRE_SOURCES = frozenset({"pipewiresrc", "pipewirezerocopysrc"})
# Elements that make a converted copy, so the PipeWire buffer is released (PIPELINES.md §5.1).
CONVERTERS = frozenset({"videoconvert", "videoconvertscale"})
# Elements that must not sit between the leaky queue and the encoder (FAILURES.md #4).
_AFTER_QUEUE_HOLDERS = frozenset({"videoconvert", "videoscale", "videoconvertscale"})

_MAX_FIX_ROUNDS = 32
_WS = " \t\n\r\f\v"  # flex [[:space:]]


# ── errors ────────────────────────────────────────────────────────────────────────────


class PipelineSyntaxError(UsageError):
    """The string is not a pipeline gst-launch-1.0 would accept (exit 2, one line).

    `position` is the 0-based character offset in `text` (the string that was parsed:
    for a pasted command line, the pipeline rebuilt from its arguments)."""

    def __init__(self, problem: str, text: str, position: int) -> None:
        position = max(0, min(position, len(text)))
        self.problem = problem
        self.text = text
        self.position = position
        super().__init__(
            f"pipeline syntax error at character {position + 1}: {problem}: {_excerpt(text, position)}"
        )


def _excerpt(text: str, position: int, before: int = 24, after: int = 16) -> str:
    """`"…src ! videoconvert >>!<< queue…"`: one line, the character at `position` marked."""
    start = max(0, position - before)
    head = ("…" if start > 0 else "") + text[start:position]
    mark = text[position : position + 1]
    tail = text[position + 1 : position + 1 + after] + ("…" if position + 1 + after < len(text) else "")
    clean = "".join(ch if ch.isprintable() else " " for ch in f"{head}>>{mark}<<{tail}")
    return f'"{clean}"'


class _FixUnavailable(Exception):
    """A mechanical fix does not apply to this pipeline's shape (e.g. references)."""


# ── the model ─────────────────────────────────────────────────────────────────────────


def _canon(name: str) -> str:
    """GObject looks property names up with `_` and `-` equivalent."""
    return name.replace("_", "-")


def _unescape(text: str) -> str:
    """gst_parse_unescape(): a backslash outside double quotes escapes the next character."""
    out: list[str] = []
    in_quotes = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and not in_quotes:
            i += 1
            if i >= len(text):
                break
            out.append(text[i])
            i += 1
            continue
        if ch == '"' and (not in_quotes or text[i - 1] != "\\"):
            in_quotes = not in_quotes
        out.append(ch)
        i += 1
    return "".join(out)


def _unquote(raw: str) -> str:
    """A property value as GStreamer sets it (gst_parse_element_set): outer *double* quotes
    off, then unescaped. Single quotes only group the token for the lexer and stay in the
    value (`name='x y'` names the element `'x y'`); only a shell would remove them."""
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        raw = raw[1:-1]
    return _unescape(raw)


_BARE_VALUE = re.compile(r"[^\s\"'\\!]+", re.ASCII)


def _quote(value: str) -> str:
    """The raw form of a property value: bare when it can be, else double-quoted."""
    if _BARE_VALUE.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Prop:
    """One `name=value` of an element; `raw` is the value as written (quotes, escapes)."""

    name: str
    raw: str

    @property
    def key(self) -> str:
        return _canon(self.name)

    @property
    def value(self) -> str:
        return _unquote(self.raw)

    @property
    def text(self) -> str:
        return f"{self.name}={self.raw}"


@dataclass(frozen=True, eq=False)
class Element:
    """An element (or a URI that GStreamer turns into a source/sink element).

    `index` counts elements and caps filters from 0 in the order written; `position` is
    the character offset in the parsed string (-1 for elements a fix created)."""

    factory: str
    props: tuple[Prop, ...] = ()
    index: int = -1
    position: int = -1
    uri: bool = False

    @classmethod
    def create(cls, factory: str, props: Mapping[str, str] | None = None) -> Element:
        """A new element; `props` are plain values (quoted here when they need it)."""
        return cls(factory, tuple(Prop(k, _quote(str(v))) for k, v in (props or {}).items()))

    @property
    def text(self) -> str:
        if self.uri:
            return self.factory
        return " ".join([self.factory, *(p.text for p in self.props)])

    @property
    def name(self) -> str | None:
        return self.prop("name")

    def prop(self, name: str, default: str | None = None) -> str | None:
        """The value GStreamer would set (the last one given wins), unquoted."""
        key = _canon(name)
        found = default
        for p in self.props:
            if p.key == key:
                found = p.value
        return found

    def has(self, name: str) -> bool:
        key = _canon(name)
        return any(p.key == key for p in self.props)

    def with_prop(self, name: str, value: str) -> Element:
        """Set a property (replacing every earlier setting of it, in place of the first)."""
        key, raw = _canon(name), _quote(value)
        props: list[Prop] = []
        done = False
        for p in self.props:
            if p.key == key:
                if not done:
                    props.append(Prop(p.name, raw))
                    done = True
                continue
            props.append(p)
        if not done:
            props.append(Prop(name, raw))
        return replace(self, props=tuple(props), index=-1, position=-1)

    def without_prop(self, name: str) -> Element:
        key = _canon(name)
        return replace(self, props=tuple(p for p in self.props if p.key != key), index=-1, position=-1)

    def label(self) -> str:
        return f"#{self.index} {self.factory}" if self.index >= 0 else self.factory


_TYPE_PREFIX = re.compile(r"\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", re.ASCII)
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-+/:.]*", re.ASCII)
_STRUCT_HEAD = re.compile(r"\s*([A-Za-z0-9-]+/[A-Za-z0-9-]+)\s*(?:\(\s*([^()]*?)\s*\))?\s*", re.ASCII)


def _plain(raw: str) -> str:
    """A caps value without its `(type)` prefix and quotes: `(string)"NV12"` → `NV12`."""
    value = raw.strip()
    m = _TYPE_PREFIX.match(value)
    if m:
        value = value[m.end() :]
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return _unescape(value)


def _split_top(text: str, sep: str) -> list[tuple[int, str]]:
    """Split at `sep` outside quotes, brackets and escapes; (offset, part) pairs."""
    parts: list[tuple[int, str]] = []
    depth = 0
    quote: str | None = None
    start = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "{[<(":
            depth += 1
        elif ch in "}]>)":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            parts.append((start, text[start:i]))
            start = i + 1
        i += 1
    parts.append((start, text[start:]))
    return parts


def _unbalanced_quote(text: str) -> int | None:
    """Offset of a quote that is never closed (escapes respected), else None."""
    quote: str | None = None
    opened = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote, opened = ch, i
        i += 1
    return opened if quote else None


@dataclass(frozen=True)
class Structure:
    """One structure of a caps string: media type, optional features, fields as written."""

    media_type: str
    features: str | None = None
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        head = self.media_type + (f"({self.features})" if self.features else "")
        return ",".join([head, *(f"{name}={raw}" for name, raw in self.fields)])

    def raw(self, name: str) -> str | None:
        found = None
        for key, raw in self.fields:
            if key == name:
                found = raw
        return found

    def get(self, name: str) -> str | None:
        """The field's value without type prefix or quotes (`(int)1920` → `1920`)."""
        raw = self.raw(name)
        return None if raw is None else _plain(raw)

    def with_field(self, name: str, raw: str) -> Structure:
        """Set a field: in place of its first occurrence, else at the end."""
        fields: list[tuple[str, str]] = []
        done = False
        for key, value in self.fields:
            if key == name:
                if not done:
                    fields.append((name, raw))
                    done = True
                continue
            fields.append((key, value))
        if not done:
            fields.append((name, raw))
        return replace(self, fields=tuple(fields))

    def without_field(self, name: str) -> Structure:
        return replace(self, fields=tuple((k, v) for k, v in self.fields if k != name))

    @property
    def dmabuf(self) -> bool:
        return bool(self.features) and "memory:DMABuf" in (self.features or "")

    def formats(self) -> list[str]:
        """`format=NV12` → ['NV12']; `format={ NV12, (string)BGRx }` → ['NV12', 'BGRx']."""
        raw = self.raw("format")
        if raw is None:
            return []
        value = raw.strip()
        m = _TYPE_PREFIX.match(value)
        if m:
            value = value[m.end() :].strip()
        if value.startswith("{") and value.endswith("}"):
            return [_plain(part) for _o, part in _split_top(value[1:-1], ",") if part.strip()]
        return [_plain(value)]

    def int_field(self, name: str) -> int | None:
        value = self.get(name)
        if value is None or not re.fullmatch(r"\s*\d{1,9}\s*", value):
            return None
        return int(value)

    def fixed_framerate(self) -> str | None:
        """`framerate=30/1` (a fixed, non-zero rate) → '30/1'; ranges, lists, 0/1 → None."""
        value = self.get("framerate")
        if value is None:
            return None
        m = re.fullmatch(r"\s*(\d+)\s*(?:/\s*(\d+)\s*)?", value)
        if not m or int(m.group(1)) == 0:
            return None
        return f"{m.group(1)}/{m.group(2) or 1}"


@dataclass(frozen=True, eq=False)
class Caps:
    """A caps filter written in a link (`a ! video/x-raw,format=NV12 ! b`)."""

    structures: tuple[Structure, ...]
    index: int = -1
    position: int = -1
    raw: str | None = None  # as written; None once a fix changed it

    @classmethod
    def parse(cls, text: str, *, index: int = -1, position: int = -1, source: str | None = None) -> Caps:
        """Parse a caps string; errors point into `source` at `position` + offset."""
        src = text if source is None else source
        base = 0 if source is None else max(position, 0)
        bad = _unbalanced_quote(text)
        if bad is not None:
            raise PipelineSyntaxError("unbalanced quote in the caps", src, base + bad)
        structures: list[Structure] = []
        for s_off, part in _split_top(text, ";"):
            pieces = _split_top(part, ",")
            head_off, head = pieces[0]
            m = _STRUCT_HEAD.fullmatch(head)
            if not m:
                raise PipelineSyntaxError(
                    f"could not parse the caps {head.strip()!r} (want media/type or media/type(features))",
                    src, base + s_off + head_off,
                )
            fields: list[tuple[str, str]] = []
            for f_off, piece in pieces[1:]:
                if not piece.strip():
                    continue  # GStreamer accepts `video/x-raw,` too
                name, eq, raw = piece.partition("=")
                name, raw = name.strip(), raw.strip()
                where = base + s_off + f_off + (len(piece) - len(piece.lstrip()))
                if not eq or not _FIELD_NAME.fullmatch(name):
                    raise PipelineSyntaxError(
                        f"caps field {piece.strip()!r} is not name=value", src, where
                    )
                if not raw:
                    raise PipelineSyntaxError(f"caps field {name!r} has no value", src, where)
                fields.append((name, raw))
            structures.append(Structure(m.group(1), m.group(2) or None, tuple(fields)))
        return cls(tuple(structures), index, position, text.strip())

    @classmethod
    def create(cls, text: str) -> Caps:
        return replace(cls.parse(text), raw=None)

    @property
    def text(self) -> str:
        return self.raw if self.raw is not None else ";".join(s.text for s in self.structures)

    @property
    def media_type(self) -> str:
        return self.structures[0].media_type

    def map(self, fn: Callable[[Structure], Structure]) -> Caps:
        return Caps(tuple(fn(s) for s in self.structures))

    def label(self) -> str:
        return f"#{self.index} caps" if self.index >= 0 else "caps"


@dataclass(frozen=True, eq=False)
class Ref:
    """`name.` or `name.pad`: links to/from an element named elsewhere in the pipeline."""

    name: str
    pad: str | None = None
    position: int = -1

    @property
    def text(self) -> str:
        return f"{self.name}.{self.pad or ''}"


Node = Element | Caps | Ref
Vertex = Element | Caps


@dataclass(eq=False)
class Pipeline:
    """A parsed pipeline: chains of elements/caps/references, and the graph they make."""

    chains: tuple[tuple[Node, ...], ...]
    source: str  # the string that was parsed (for a command line: the rebuilt pipeline)
    command_line: bool = False  # it came from a pasted `gst-launch-1.0 …` command line
    nodes: list[Vertex] = field(init=False)  # elements and caps filters, by index
    _targets: dict[Ref, Element] = field(init=False, repr=False)
    _preds: dict[Vertex, list[Vertex]] = field(init=False, repr=False)
    _succs: dict[Vertex, list[Vertex]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.nodes = sorted(
            (n for chain in self.chains for n in chain if not isinstance(n, Ref)), key=lambda n: n.index
        )
        explicit: dict[str, Element] = {}
        implicit: dict[str, Element] = {}
        counts: dict[str, int] = {}
        for el in self.elements:
            if el.uri:
                continue
            n = counts.get(el.factory, 0)
            counts[el.factory] = n + 1
            name = el.name
            if name is None:
                implicit.setdefault(f"{el.factory}{n}", el)
            elif name in explicit:
                raise PipelineSyntaxError(f"two elements are named {name!r}", self.source, el.position)
            else:
                explicit[name] = el
        self._targets = {}
        for chain in self.chains:
            for n in chain:
                if isinstance(n, Ref):
                    target = explicit.get(n.name) or implicit.get(n.name)
                    if target is None:
                        raise PipelineSyntaxError(f"no element is named {n.name!r}", self.source, n.position)
                    self._targets[n] = target
        self._preds = {n: [] for n in self.nodes}
        self._succs = {n: [] for n in self.nodes}
        for chain in self.chains:
            for a, b in zip(chain, chain[1:], strict=False):
                va, vb = self.vertex(a), self.vertex(b)
                self._succs[va].append(vb)
                self._preds[vb].append(va)

    @property
    def elements(self) -> list[Element]:
        return [n for n in self.nodes if isinstance(n, Element)]

    def find(self, factory: str) -> list[Element]:
        return [e for e in self.elements if e.factory == factory and not e.uri]

    def vertex(self, node: Node) -> Vertex:
        return self._targets[node] if isinstance(node, Ref) else node

    def predecessors(self, node: Vertex) -> list[Vertex]:
        return list(self._preds.get(node, []))

    def successors(self, node: Vertex) -> list[Vertex]:
        return list(self._succs.get(node, []))

    def upstream(self, node: Vertex) -> list[Vertex]:
        """The path that feeds `node`, source first (first input at each step; no cycles)."""
        path: list[Vertex] = []
        seen = {node}
        cur = node
        while self._preds.get(cur):
            cur = self._preds[cur][0]
            if cur in seen:
                break
            seen.add(cur)
            path.append(cur)
        path.reverse()
        return path

    def downstream(self, node: Vertex) -> list[Vertex]:
        """What `node` feeds, in order (first output at each step; no cycles)."""
        path: list[Vertex] = []
        seen = {node}
        cur = node
        while self._succs.get(cur):
            cur = self._succs[cur][0]
            if cur in seen:
                break
            seen.add(cur)
            path.append(cur)
        return path

    def render(self) -> str:
        """The pipeline as one gst_parse_launch() string (chains separated by a space)."""
        return _render(self.chains)

    def argv(self) -> list[str]:
        """Arguments for `gst-launch-1.0` that rebuild exactly this pipeline (no shell)."""
        args: list[str] = []
        for chain in self.chains:
            for i, n in enumerate(chain):
                if i and not isinstance(n, Caps) and not isinstance(chain[i - 1], Caps):
                    args.append("!")
                if isinstance(n, Caps):
                    args += ["!", n.text, "!"]
                elif isinstance(n, Element) and not n.uri:
                    args += [n.factory, *(p.text for p in n.props)]
                else:
                    args.append(n.text)
        return args

    def substitute(self, fn: Callable[[Element], Element | None]) -> Pipeline:
        """A new pipeline with each element replaced by `fn(element)` (None keeps it)."""
        chains = [[(fn(n) or n) if isinstance(n, Element) else n for n in chain] for chain in self.chains]
        return parse(_render(chains))


def _render(chains: Iterable[Iterable[Node]]) -> str:
    return " ".join(" ! ".join(n.text for n in chain) for chain in chains if chain)


# ── the lexer (after GStreamer's gst/parse/parse.l) ───────────────────────────────────

_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9\-_%:]*", re.ASCII)
_MIMETYPE = re.compile(r"[A-Za-z0-9-]+/[A-Za-z0-9-]+", re.ASCII)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*://", re.ASCII)
_ENV_ASSIGN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.ASCII | re.DOTALL)
_COMMAND = re.compile(
    r"\s*(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*(?:\S*/)?gst-launch(?:-1\.0)?(?=\s|$)", re.ASCII
)


@dataclass
class _Tok:
    kind: str  # link | assign | element | uri | ref
    pos: int
    name: str = ""
    raw: str = ""
    caps: str | None = None
    caps_pos: int = -1


def _run_end(text: str, i: int) -> int:
    """End of a flex `{_char}+` run: backslash escapes or non-space characters."""
    n = len(text)
    while i < n:
        if text[i] == "\\" and i + 1 < n and text[i + 1] != "\n":
            i += 2
        elif text[i] in _WS:
            break
        else:
            i += 1
    return i


def _quoted_end(text: str, i: int) -> int | None:
    """End (exclusive) of the quoted string starting at `i`, or None if never closed."""
    q = text[i]
    k = i + 1
    while k < len(text):
        if text[k] == "\\" and k + 1 < len(text) and text[k + 1] == q:
            k += 2
        elif text[k] == q:
            return k + 1
        else:
            k += 1
    return None


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _scan_caps(text: str, i: int) -> int:
    """From a media type at `i`, the end of `_caps (; _caps)*`: stops at `!` or the end."""
    n = len(text)
    k = i
    while True:
        m = _MIMETYPE.match(text, k)
        if not m:
            raise PipelineSyntaxError("expected a media type such as video/x-raw after ';'", text, k)
        k = m.end()
        while k < n:
            ch = text[k]
            if ch == "\\" and k + 1 < n and text[k + 1] != "\n" or ch == "," and k + 1 < n and text[k + 1] != "!":
                k += 2
            elif ch in ";!":
                break
            else:
                k += 1
        if k < n and text[k] == ";":
            k = _skip_ws(text, k + 1)
            continue
        return k


def _lex_link(text: str, i: int) -> tuple[_Tok, int]:
    j = _skip_ws(text, i + 1)
    if not _MIMETYPE.match(text, j):
        return _Tok("link", i), i + 1
    end = _scan_caps(text, j)
    if end >= len(text):
        raise PipelineSyntaxError(
            "a caps filter must sit between two elements ('a ! caps ! b'), but nothing follows it",
            text, j,
        )
    following = _skip_ws(text, end + 1)
    if _MIMETYPE.match(text, following):
        raise PipelineSyntaxError(
            "two caps filters in a row: gst-launch reads the second as an element; merge them into one "
            "or put an element between them", text, following,
        )
    return _Tok("link", i, caps=text[j:end].rstrip(), caps_pos=j), end + 1


def _odd_quotes(raw: str) -> int | None:
    """Offset of the last unescaped double quote when there is an odd number of them."""
    offsets: list[int] = []
    i = 0
    while i < len(raw):
        if raw[i] == "\\":
            i += 2
            continue
        if raw[i] == '"':
            offsets.append(i)
        i += 1
    return offsets[-1] if len(offsets) % 2 else None


def _lex_value(text: str, name: str, v: int) -> int:
    """End of a property value starting at `v` (flex: the longest of run or quoted string).

    Stricter than GStreamer, which takes an unclosed quote into the value: that is an
    unbalanced quote here."""
    if v >= len(text):
        raise PipelineSyntaxError(f"property {name!r} has no value", text, v)
    end = _run_end(text, v)
    quoted = None
    if text[v] in "\"'":
        quoted = _quoted_end(text, v)
        if quoted is None:
            raise PipelineSyntaxError(f"unbalanced quote in the value of {name!r}", text, v)
        end = max(end, quoted)
    raw = text[v:end]
    if raw == "!":
        raise PipelineSyntaxError(f"property {name!r} has no value", text, v)
    if end != quoted:
        bad = _odd_quotes(raw)
        if bad is not None:
            raise PipelineSyntaxError(f"unbalanced quote in the value of {name!r}", text, v + bad)
    return end


def _lex_word(text: str, i: int) -> tuple[_Tok, int]:
    """At a letter: the longest of assignment, reference, URL and identifier."""
    if _MIMETYPE.match(text, i):
        raise PipelineSyntaxError(
            "a caps filter must sit between two elements ('a ! caps ! b'), not start a chain", text, i
        )
    m = _IDENT.match(text, i)
    assert m is not None
    e = m.end()
    name = m.group()
    # assignment: identifier [ws] = [ws] value
    j = _skip_ws(text, e)
    if j < len(text) and text[j] == "=":
        v = _skip_ws(text, j + 1)
        end = _lex_value(text, name, v)
        return _Tok("assign", i, name=name, raw=text[v:end]), end
    url = _URL.match(text, i)
    if url:
        end = _run_end(text, url.end())
        return _Tok("uri", i, raw=text[i:end]), end
    if e < len(text) and text[e] == ".":
        pad = _IDENT.match(text, e + 1)
        after = _skip_ws(text, e + 1)
        if not pad and after < len(text) and text[after] == "(":
            raise PipelineSyntaxError("bins 'name.( … )' are not supported by helixdiag lint", text, i)
        end = pad.end() if pad else e + 1
        return _Tok("ref", i, name=name, raw=pad.group() if pad else ""), end
    return _Tok("element", i, name=name), e


def _lex(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    i = _skip_ws(text, 0)
    while i < len(text):
        ch = text[i]
        if ch == "!":
            tok, i = _lex_link(text, i)
        elif ch.isascii() and ch.isalpha():
            tok, i = _lex_word(text, i)
        elif ch == "/":
            end = _run_end(text, i)
            tok, i = _Tok("uri", i, raw=text[i:end]), end
        elif ch in "()":
            raise PipelineSyntaxError("bins '( … )' are not supported by helixdiag lint", text, i)
        elif ch == ".":
            raise PipelineSyntaxError(
                "pad references without an element ('.pad') are not supported by helixdiag lint", text, i
            )
        elif ch in "\"'":
            if _quoted_end(text, i) is None:
                raise PipelineSyntaxError("unbalanced quote", text, i)
            raise PipelineSyntaxError("a quoted string can only be a property value (prop=\"…\")", text, i)
        elif ch == "=":
            raise PipelineSyntaxError("'=' without a property name", text, i)
        else:
            raise PipelineSyntaxError(f"unexpected character {ch!r}", text, i)
        tokens.append(tok)
        i = _skip_ws(text, i)
    return tokens


def _build(tokens: list[_Tok], text: str) -> list[list[Node]]:
    """Chains from tokens, with gst's rules: a caps filter and a sink reference close a link,
    a source reference opens a chain, properties follow their element."""
    chains: list[list[Node]] = []
    cur: list[Node] = []
    pending: _Tok | None = None  # a '!' waiting for what it links to
    open_ref: Ref | None = None  # a reference that opened a chain and needs its '!'
    props_open = False
    index = 0
    for tok in tokens:
        if tok.kind == "link":
            if pending is not None:
                raise PipelineSyntaxError("'!' follows another '!' with no element between them", text, tok.pos)
            if not cur:
                raise PipelineSyntaxError("'!' links from nothing: a chain must start with an element", text, tok.pos)
            if isinstance(cur[-1], Ref) and len(cur) > 1:
                raise PipelineSyntaxError(
                    f"the reference '{cur[-1].text}' ends its chain: start a new chain with it instead",
                    text, cur[-1].position,
                )
            pending, open_ref, props_open = tok, None, False
            if tok.caps is not None:
                cur.append(Caps.parse(tok.caps, index=index, position=tok.caps_pos, source=text))
                index += 1
            continue
        if tok.kind == "assign":
            if not props_open:
                raise PipelineSyntaxError(f"property '{tok.name}=' does not follow an element", text, tok.pos)
            el = cur[-1]
            assert isinstance(el, Element)
            cur[-1] = replace(el, props=(*el.props, Prop(tok.name, tok.raw)))
            continue
        if open_ref is not None:
            raise PipelineSyntaxError(
                f"the reference '{open_ref.text}' must be followed by '!'", text, open_ref.position
            )
        node: Node
        if tok.kind == "ref":
            node = Ref(tok.name, tok.raw or None, tok.pos)
        elif tok.kind == "uri":
            node = Element(tok.raw, (), index, tok.pos, uri=True)
            index += 1
        else:
            node = Element(tok.name, (), index, tok.pos)
            index += 1
        if pending is not None:
            cur.append(node)
            pending = None
        else:
            cur = [node]
            chains.append(cur)
            if isinstance(node, Ref):
                open_ref = node
        props_open = tok.kind == "element"
    if pending is not None:
        raise PipelineSyntaxError("'!' at the end links to nothing", text, pending.pos)
    if open_ref is not None:
        raise PipelineSyntaxError(f"the reference '{open_ref.text}' must be followed by '!'", text, open_ref.position)
    if not chains:
        raise PipelineSyntaxError("empty pipeline", text, 0)
    return chains


def _gst_escape(arg: str) -> str:
    """_gst_parse_escape(): how gst-launch-1.0 joins its arguments (spaces outside "…")."""
    out: list[str] = []
    in_quotes = False
    for i, ch in enumerate(arg):
        if ch == '"' and (not in_quotes or (i and arg[i - 1] != "\\")):
            in_quotes = not in_quotes
        if ch == " " and not in_quotes:
            out.append("\\")
        out.append(ch)
    return "".join(out)


def _strip_command_line(text: str) -> tuple[str, bool]:
    """`GST_DEBUG=… gst-launch-1.0 -e a ! 'caps' ! b \\` → the pipeline gst-launch would build."""
    if not _COMMAND.match(text):
        return text, False
    joined = re.sub(r"\\\r?\n", " ", text)
    try:
        args = shlex.split(joined)
    except ValueError as exc:
        raise PipelineSyntaxError(f"cannot split the gst-launch-1.0 command line ({exc})", text, len(text)) from None
    i = 0
    while i < len(args) and _ENV_ASSIGN.fullmatch(args[i]):
        i += 1
    i += 1  # the program itself
    while i < len(args) and args[i].startswith("-"):
        i += 1
        if args[i - 1] == "--":
            break
    rebuilt = " ".join(_gst_escape(a) for a in args[i:])
    if not rebuilt.strip():
        raise PipelineSyntaxError("the gst-launch-1.0 command line has no pipeline", text, len(text))
    return rebuilt, True


def parse(pipeline: str) -> Pipeline:
    """Parse a gst_parse_launch() string (or a pasted `gst-launch-1.0 …` command line).

    Raises `PipelineSyntaxError` for anything gst-launch-1.0 would reject as malformed, and
    also for unbalanced quotes (which GStreamer silently takes into the value)."""
    if not isinstance(pipeline, str):
        raise TypeError(f"pipeline must be a str, not {type(pipeline).__name__}")
    text, command_line = _strip_command_line(pipeline)
    chains = _build(_lex(text), text)
    return Pipeline(tuple(tuple(c) for c in chains), text, command_line)


# ── vsockenc's configuration, for other probes ────────────────────────────────────────


def _to_int(value: str) -> int | str:
    text = value.strip()
    for base in (10, 0):
        try:
            return int(text, base)
        except ValueError:
            continue
    return value


def _props_of(el: Element, defaults: bool) -> dict[str, Any]:
    props: dict[str, Any] = dict(VSOCKENC_DEFAULTS) if defaults else {}
    for p in el.props:
        props[p.key] = _to_int(p.value) if p.key in _VSOCKENC_INT_PROPS else p.value
    return props


def _as_pipeline(pipeline: str | Pipeline) -> Pipeline:
    return pipeline if isinstance(pipeline, Pipeline) else parse(pipeline)


def vsockenc_properties(pipeline: str | Pipeline, *, defaults: bool = True) -> dict[str, Any]:
    """The first vsockenc's properties (PIPELINES.md §3 names), `{}` without a vsockenc.

    Integer properties are ints (the raw string if not a number); with `defaults` the
    element's defaults fill what the pipeline does not set (tcp-port 15937, …)."""
    p = _as_pipeline(pipeline)
    found = p.find("vsockenc")
    return _props_of(found[0], defaults) if found else {}


def vsockenc_endpoint(pipeline: str | Pipeline) -> tuple[Any, ...] | None:
    """Where the first vsockenc connects, in its own order of precedence (PIPELINES.md §3):
    ('unix', path) | ('tcp', host, port) | ('vsock', cid, port); None without a vsockenc."""
    props = vsockenc_properties(pipeline)
    if not props:
        return None
    if props.get("socket-path"):
        return ("unix", props["socket-path"])
    if props.get("tcp-host"):
        return ("tcp", props["tcp-host"], props["tcp-port"])
    return ("vsock", props["cid"], props["port"])


# ── lint ──────────────────────────────────────────────────────────────────────────────


@dataclass
class LintResult:
    pipeline: str  # as given
    parsed: str  # the pipeline as parsed and re-rendered (command-line prefix removed)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # informational, never a failure
    corrected: str | None = None  # the pipeline with the mechanical fixes, if any applied
    vsockenc: dict[str, Any] | None = None  # vsockenc_properties(), None without vsockenc

    @property
    def status(self) -> str:
        return worst_status(self.findings)

    @property
    def ids(self) -> list[str]:
        return [f.failure_id for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "helixdiag.lint/v1",
            "status": self.status,
            "pipeline": self.pipeline,
            "parsed": self.parsed,
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
            "corrected": self.corrected,
            "vsockenc": self.vsockenc,
        }


Fix = Callable[["_Editor"], None]


@dataclass
class _Issue:
    finding: Finding | None = None
    note: str | None = None
    fix: Fix | None = None


def _evidence(node: Vertex, rule: str, **extra: Any) -> dict[str, Any]:
    return {"element_index": node.index, "element": node.text, "position": node.position, "rule": rule, **extra}


def _is_encoder(el: Vertex) -> bool:
    return isinstance(el, Element) and not el.uri and (el.factory == "vsockenc" or el.factory.endswith("enc"))


def _is_sink(el: Vertex) -> bool:
    return isinstance(el, Element) and (el.uri or el.factory.endswith("sink"))


_LEAKY = {"downstream": "downstream", "2": "downstream", "gst-queue-leak-downstream": "downstream",
          "upstream": "upstream", "1": "upstream", "gst-queue-leak-upstream": "upstream"}


def _leaky(n: Vertex) -> str | None:
    """'downstream' / 'upstream' for a leaky queue, None otherwise."""
    if not (isinstance(n, Element) and n.factory == "queue"):
        return None
    return _LEAKY.get((n.prop("leaky") or "no").strip().lower().replace("_", "-"))


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in {"true", "yes", "t", "1", "on"}


def _ipv4(value: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(value.strip()))
    except ValueError:
        return None


@dataclass
class _Path:
    nodes: list[Vertex]  # from the source, up to (not including) the target
    target: Element | None  # vsockenc, another encoder, a sink, or None (the chain just ends)
    vsock: bool

    @property
    def pipewire(self) -> bool:
        return bool(self.nodes) and isinstance(self.nodes[0], Element) and self.nodes[0].factory in PIPEWIRE_SOURCES

    @property
    def zero_copy(self) -> bool:
        return bool(self.nodes) and isinstance(self.nodes[0], Element) and self.nodes[0].factory == "pipewirezerocopysrc"

    def after(self, node: Vertex) -> Vertex | None:
        i = self.nodes.index(node)
        return self.nodes[i + 1] if i + 1 < len(self.nodes) else self.target


def _paths(p: Pipeline) -> list[_Path]:
    """The capture paths to check: what feeds each vsockenc, and each PipeWire source's
    chain up to its encoder or sink when it does not feed a vsockenc."""
    paths = [_Path(p.upstream(v), v, True) for v in p.find("vsockenc")]
    covered = {n for path in paths for n in path.nodes}
    for src in p.elements:
        if src.factory not in PIPEWIRE_SOURCES or src in covered:
            continue
        nodes: list[Vertex] = [src]
        target: Element | None = None
        for n in p.downstream(src):
            if _is_encoder(n) or _is_sink(n):
                target = n  # type: ignore[assignment]
                break
            nodes.append(n)
        paths.append(_Path(nodes, target, False))
    return paths


class _Editor:
    """Edits on a copy of a pipeline's chains, for the mechanical fixes."""

    def __init__(self, p: Pipeline) -> None:
        self.p = p
        self.chains: list[list[Node]] = [list(c) for c in p.chains]
        self.replaced: dict[Vertex, Vertex] = {}

    def _current(self, node: Vertex) -> Vertex:
        while node in self.replaced:
            node = self.replaced[node]
        return node

    def _vertex(self, node: Node) -> Vertex:
        return self._current(self.p.vertex(node)) if isinstance(node, Ref) else node

    def _locate(self, node: Vertex) -> tuple[list[Node], int]:
        for chain in self.chains:
            for k, n in enumerate(chain):
                if n is node:
                    return chain, k
        raise _FixUnavailable

    def replace(self, node: Vertex, new: Vertex) -> None:
        node = self._current(node)
        chain, k = self._locate(node)
        chain[k] = new
        self.replaced[node] = new

    def remove(self, node: Vertex) -> None:
        node = self._current(node)
        if any(isinstance(n, Ref) and self._vertex(n) is node for c in self.chains for n in c):
            raise _FixUnavailable  # referenced by name elsewhere
        chain, k = self._locate(node)
        del chain[k]

    def insert_between(self, a: Vertex, b: Vertex, nodes: list[Vertex]) -> None:
        a, b = self._current(a), self._current(b)
        for chain in self.chains:
            for k in range(len(chain) - 1):
                if self._vertex(chain[k]) is a and self._vertex(chain[k + 1]) is b:
                    chain[k + 1 : k + 1] = nodes
                    return
        raise _FixUnavailable

    def render(self) -> str:
        out: list[list[Node]] = []
        for chain in self.chains:
            merged: list[Node] = []
            for n in chain:
                if isinstance(n, Caps) and merged and isinstance(merged[-1], Caps):
                    merged[-1] = _merge_caps(merged[-1], n)
                else:
                    merged.append(n)
            while merged and isinstance(merged[0], Caps):
                merged.pop(0)
            while merged and isinstance(merged[-1], Caps):
                merged.pop()
            if merged:
                out.append(merged)
        return _render(out)


def _merge_caps(a: Caps, b: Caps) -> Caps:
    """Two caps filters left next to each other by a fix: one filter with both constraints."""
    if len(a.structures) == 1 and len(b.structures) == 1 and a.media_type == b.media_type:
        sa, sb = a.structures[0], b.structures[0]
        merged = sa
        for name, raw in sb.fields:
            merged = merged.with_field(name, raw)
        return Caps((replace(merged, features=sb.features or sa.features),))
    return b


class _Linter:
    def __init__(self, p: Pipeline, host: str | None, port: int | None) -> None:
        self.p = p
        self.host = host
        self.port = port
        self.issues: list[_Issue] = []
        self.vsockencs = p.find("vsockenc")

    def fail(self, failure_id: str, message: str, evidence: dict[str, Any], fix: Fix | None = None) -> None:
        for issue in self.issues:  # two branches sharing a node report it once
            f = issue.finding
            if f and (f.failure_id, f.message, f.evidence.get("element_index")) == (
                    failure_id, message, evidence.get("element_index")):
                return
        self.issues.append(_Issue(Finding(failure_id, message, evidence), None, fix))

    def note(self, message: str) -> None:
        if all(i.note != message for i in self.issues):
            self.issues.append(_Issue(None, message))

    def run(self) -> list[_Issue]:
        paths = _paths(self.p)
        if not self.vsockencs:
            self.note("vsockenc is absent: the vsockenc-specific rules (formats, profile caps, "
                      "transport, port) were not applied")
        self.always_copy()
        for path in paths:
            if path.vsock:
                self.zero_copy_source(path)
        for path in paths:
            self.videorate(path)
        for path in paths:
            self.framerate(path)
        for path in paths:
            self.after_leaky_queue(path)
        for path in paths:
            self.missing_convert(path)
        for path in paths:
            if path.vsock:
                self.pixel_format(path)
        for v in self.vsockencs:
            self.profile_caps(v)
        for v in self.vsockencs:
            self.transport(v)
        for path in paths:
            self.advice(path)
        for v in self.vsockencs:
            self.vsockenc_notes(v)
        self.single_quotes()
        self.unlinked()
        return self.issues

    # PIPELINES.md §5.5 + FAILURES.md #3 (`96c92fc67` introduced, `7d8db571d` reverted):
    # always-copy=true on virtio-gpu stops PipeWire after the first render.
    def always_copy(self) -> None:
        for src in self.p.elements:
            if src.factory not in PIPEWIRE_SOURCES or not _true(src.prop("always-copy")):
                continue
            if not self.vsockencs:
                self.note(f"{src.label()} has always-copy=true: harmful on virtio-gpu (it stops frame "
                          "production after the first render), fine on the GNOME+AMD/Intel branch")
                continue

            def fix(ed: _Editor, src: Element = src) -> None:
                ed.replace(src, src.without_prop("always-copy"))

            self.fail(
                "pipewire-static-stall",
                f"{src.label()} has always-copy=true, which stops PipeWire after the first render on "
                "virtio-gpu (the platform of the vsockenc path)",
                _evidence(src, "PIPELINES.md §5 rule 5; FAILURES.md #3 always-copy-stops-pipewire"),
                fix,
            )

    # PIPELINES.md §4 `94ac4493b`/`1e62082fd` and §2.4, FAILURES.md #1
    # screencast-shm-not-dmabuf: `pipewirezerocopysrc … buffer-type=dmabuf-passthrough` on
    # virtio-gpu fails with "no more input formats"; HEAD went back to pipewiresrc.
    def zero_copy_source(self, path: _Path) -> None:
        src = path.nodes[0] if path.nodes else None
        if not (isinstance(src, Element) and src.factory == "pipewirezerocopysrc"):
            return
        if (src.prop("buffer-type") or "").strip() != "dmabuf-passthrough":
            self.note(f"{src.label()} feeds vsockenc: on virtio-gpu Mutter offers no DMA-BUF, and HEAD "
                      "uses `pipewiresrc … ! videoconvert ! video/x-raw,format=NV12` (PIPELINES.md §4)")
            return

        def fix(ed: _Editor, src: Element = src) -> None:
            props = {"path": src.prop("pipewire-node-id"), "do-timestamp": "true",
                     "keepalive-time": src.prop("keepalive-time"), "fd": src.prop("pipewire-fd")}
            ed.replace(src, Element.create("pipewiresrc", {k: v for k, v in props.items() if v is not None}))

        self.fail(
            "pipewire-shm-buffers",
            f"{src.label()} forces DMA-BUF passthrough, but ScreenCast on virtio-gpu (Mutter, UTM) offers "
            "only shared-memory buffers: negotiation fails with \"no more input formats\"; use pipewiresrc "
            "and the NV12 pixel path",
            _evidence(src, "PIPELINES.md §4 94ac4493b/1e62082fd and §2.4; FAILURES.md #1 screencast-shm-not-dmabuf",
                      buffer_type="dmabuf-passthrough"),
            fix,
        )

    # FAILURES.md #5 videorate-breaks-negotiation (`ef7639054`/`7bd31c1c1`/`81547decc`),
    # PIPELINES.md §5 rule 6: no videorate in the vsockenc branch or the virtio source chain.
    def videorate(self, path: _Path) -> None:
        if not (path.vsock or path.pipewire):
            return
        for n in path.nodes:
            if not (isinstance(n, Element) and n.factory == "videorate"):
                continue

            def fix(ed: _Editor, n: Element = n) -> None:
                ed.remove(n)

            where = "vsockenc's input branch" if path.vsock else "the PipeWire capture chain"
            self.fail(
                "gst-pipeline-order",
                f"{n.label()} in {where}: a fixed output rate fights pipewiresrc's variable (0/1) "
                "frame rate and breaks negotiation (output dropped to 1 frame when it was tried)",
                _evidence(n, "FAILURES.md #5 videorate-breaks-negotiation; PIPELINES.md §5 rule 6"),
                fix,
            )

    # PIPELINES.md §5 rule 6 and the §2.3/§2.4 notes: no fixed `framerate` capsfilter on
    # pipewiresrc (variable-rate negotiation; on AMD it also strips memory:DMABuf).
    def framerate(self, path: _Path) -> None:
        if not path.pipewire:
            return
        for n in path.nodes:
            if not isinstance(n, Caps):
                continue
            rates = [r for s in n.structures if (r := s.fixed_framerate())]
            if not rates:
                continue

            def fix(ed: _Editor, n: Caps = n) -> None:
                ed.replace(n, n.map(lambda st: st.without_field("framerate")))

            self.fail(
                "gst-pipeline-order",
                f"{n.label()} pins framerate={rates[0]} on the PipeWire capture chain: a fixed "
                "frame rate breaks pipewiresrc's variable-rate negotiation on virtio-gpu",
                _evidence(n, "PIPELINES.md §5 rule 6 and §2.3; FAILURES.md #5", framerate=rates[0],
                          source=path.nodes[0].text),
                fix,
            )

    # FAILURES.md #4 leaky-queue-before-convert-stall (`d6ff0e538`), PIPELINES.md §5 rules
    # 1 and 4: convert/scale before the one-buffer leaky queue, the queue right before the
    # encoder. (videorate after the queue is reported by the videorate rule.)
    def after_leaky_queue(self, path: _Path) -> None:
        if not (path.target is not None and _is_encoder(path.target) and (path.vsock or path.pipewire)):
            return
        queues = [i for i, n in enumerate(path.nodes) if _leaky(n)]
        if not queues:
            return
        qi = queues[-1]
        queue = path.nodes[qi]
        segment = path.nodes[qi + 1 :]
        offenders = [n for n in segment if isinstance(n, Element) and n.factory in _AFTER_QUEUE_HOLDERS]
        if not offenders:
            return

        def fix(ed: _Editor, queue: Vertex = queue, segment: list[Vertex] = segment,
                before: Vertex | None = path.nodes[qi - 1] if qi else None) -> None:
            if before is None:
                raise _FixUnavailable
            moved = [n for n in segment if not (isinstance(n, Element) and n.factory == "videorate")]
            for n in segment:
                ed.remove(n)
            ed.insert_between(before, queue, moved)

        for n in offenders:
            self.fail(
                "gst-pipeline-order",
                f"{n.label()} comes after the leaky {queue.label()}: the PipeWire buffers stay "
                f"referenced across {path.target.factory}'s blocking round trip and capture stalls after "
                "about 2 frames; convert before the queue",
                _evidence(n, "FAILURES.md #4 leaky-queue-before-convert-stall; PIPELINES.md §5 rules 1 and 4",
                          queue_index=queue.index, queue=queue.text),
                fix,
            )

    # PIPELINES.md §5 rule 1, the §2.3 note ("no videoconvert before the queue") and history
    # `4b1da106f`/`a7eadb6fc`: without a videoconvert right after pipewiresrc, the raw
    # PipeWire buffers themselves wait in the queue / the TCP send (FAILURES.md #4).
    def missing_convert(self, path: _Path) -> None:
        if not path.pipewire or path.zero_copy:
            return
        leaky = [n for n in path.nodes if _leaky(n)]
        if not (path.vsock or leaky):
            return
        if any(isinstance(n, Element) and n.factory in CONVERTERS for n in path.nodes[1:]):
            return  # a converter exists; if it is after the queue, the order rule reports it
        src = path.nodes[0]
        if any(isinstance(n, Caps) and any(s.dmabuf for s in n.structures) for n in path.nodes):
            self.note(f"{src.label()} feeds DMA-BUF caps straight on (the zero-copy attempt): Mutter on "
                      "virtio-gpu offers no DMA-BUF (PIPELINES.md §2.4, `94ac4493b`), see "
                      "`helixdiag explain pipewire-shm-buffers`")
            return
        holder = leaky[0] if leaky else path.target
        first = path.nodes[1] if len(path.nodes) > 1 else path.target

        def fix(ed: _Editor, src: Vertex = src, first: Vertex | None = first) -> None:
            if first is None:
                raise _FixUnavailable
            ed.insert_between(src, first, [Element.create("videoconvert")])

        assert holder is not None
        self.fail(
            "gst-pipeline-order",
            f"no videoconvert between {src.label()} and {holder.label()}: the raw PipeWire buffers are "
            f"held {'in the queue and ' if leaky else ''}across the encoder's blocking round trip "
            "(capture stalls) and go out as BGRx; put `videoconvert ! video/x-raw,format=NV12` right "
            "after the source",
            _evidence(src, "PIPELINES.md §5 rule 1 and §2.3; history 4b1da106f/a7eadb6fc; FAILURES.md #4",
                      held_by=holder.text, held_by_index=holder.index),
            fix,
        )

    # PIPELINES.md §5 rule 3 and FAILURES.md #8 pixel-bandwidth-slirp: feed vsockenc NV12;
    # BGRx/BGRA/RGBx/RGBA cost 4 B/px (2.67× NV12) over SLiRP TCP.
    def pixel_format(self, path: _Path) -> None:
        v = path.target
        assert v is not None
        if path.zero_copy:
            return  # DMA-BUF in, no pixels sent (or the zero-copy rule says why not)
        pinned: Caps | None = None
        converter: Element | None = None
        for n in reversed(path.nodes):
            if isinstance(n, Element) and n.factory in CONVERTERS:
                converter = n
                break
            if isinstance(n, Caps) and any(s.formats() for s in n.structures):
                pinned = n
                break
        size, size_from = self._size(path)
        if pinned is not None:
            s = next(s for s in pinned.structures if s.formats())
            formats = s.formats()
            if s.dmabuf:
                self.note(f"{pinned.label()} asks for DMA-BUF memory; Mutter on virtio-gpu offers none "
                          "(PIPELINES.md §2.4): expect 'no more input formats' there")
                return
            if "NV12" in formats:
                if formats[0] != "NV12":
                    self.note(f"{pinned.label()} allows {', '.join(formats)}: pin format=NV12 alone for vsockenc")
                return
            rgb = [f for f in formats if f in _RGB_FORMATS]
            if not rgb:
                self.note(f"{pinned.label()} pins format={'/'.join(formats)}, which vsockenc does not accept "
                          f"({', '.join(VSOCKENC_FORMATS)}): negotiation will fail; use NV12")
                return
            fmt = rgb[0]

            def fix(ed: _Editor, pinned: Caps = pinned) -> None:
                i = path.nodes.index(pinned)
                if not any(isinstance(n, Element) and n.factory in CONVERTERS for n in path.nodes[:i]):
                    if i == 0:
                        raise _FixUnavailable
                    ed.insert_between(path.nodes[i - 1], pinned, [Element.create("videoconvert")])
                ed.replace(pinned, pinned.map(lambda st: st.with_field("format", "NV12") if st.formats() else st))

            self.fail(
                "gst-bgra-bandwidth",
                f"{pinned.label()} feeds vsockenc {fmt}: {self._cost(fmt, size, size_from)}",
                _evidence(pinned, "PIPELINES.md §5 rule 3; FAILURES.md #8 pixel-bandwidth-slirp",
                          format=fmt, **self._bytes(fmt, size, size_from)),
                fix,
            )
            return

        def fix_unpinned(ed: _Editor, converter: Element | None = converter) -> None:
            nv12 = Caps.create("video/x-raw,format=NV12")
            if converter is None:
                if not path.nodes:
                    raise _FixUnavailable
                after_src = path.nodes[1] if len(path.nodes) > 1 else v
                ed.insert_between(path.nodes[0], after_src, [Element.create("videoconvert"), nv12])
                return
            i = path.nodes.index(converter)
            later = [n for n in path.nodes[i + 1 :] if isinstance(n, Caps)]
            if later:
                ed.replace(later[0], later[0].map(lambda st: st.with_field("format", "NV12")))
            else:
                ed.insert_between(converter, path.after(converter) or v, [nv12])

        what = f"after {converter.label()}" if converter else "anywhere before it"
        self.fail(
            "gst-bgra-bandwidth",
            f"{v.label()}'s input format is not pinned ({what}): vsockenc lists BGRx first and PipeWire "
            f"on virtio-gpu delivers BGRx, so expect {self._cost('BGRx', size, size_from)}",
            _evidence(v, "PIPELINES.md §5 rule 3, §2.4 and history 4b1da106f; FAILURES.md #8",
                      format=None, assumed_format="BGRx", **self._bytes("BGRx", size, size_from)),
            fix_unpinned,
        )

    def _size(self, path: _Path) -> tuple[tuple[int, int], str]:
        for n in reversed(path.nodes):
            if not isinstance(n, Caps):
                continue
            for s in n.structures:
                w, h = s.int_field("width"), s.int_field("height")
                if w is not None or h is not None:
                    if w and h and 0 < w <= 8192 and 0 < h <= 8192:
                        return (w, h), f"size from {n.label()}"
                    return DEFAULT_SIZE, (f"default size: {n.label()} gives an incomplete or "
                                          "out-of-range width/height")
        return DEFAULT_SIZE, "default size: no width/height in the caps"

    @staticmethod
    def _bytes(fmt: str, size: tuple[int, int], size_from: str) -> dict[str, Any]:
        """Bytes per frame from protocol.frame_layout, in `fmt` and in NV12 for comparison."""
        w, h = size
        rgb = frame_layout(_RGB_FORMATS[fmt], w, h).size
        nv12 = frame_layout(PixelFormat.NV12, w, h).size
        return {"size": f"{w}x{h}", "size_from": size_from, "bytes_per_frame": rgb,
                "nv12_bytes_per_frame": nv12, "ratio": round(rgb / nv12, 2)}

    def _cost(self, fmt: str, size: tuple[int, int], size_from: str) -> str:
        b = self._bytes(fmt, size, size_from)

        def num(n: int) -> str:
            return f"{n:,}".replace(",", " ")

        return (f"{num(b['bytes_per_frame'])} bytes per {b['size']} frame ({size_from}) vs "
                f"{num(b['nv12_bytes_per_frame'])} in NV12 ({b['ratio']}×) over SLiRP TCP, which "
                "costs about 67 ms per 3.1 MB")

    # FAILURES.md #6 profile-caps-mismatch (`19df4be73`), PIPELINES.md §5 rule 7: no
    # `profile=` in video/x-h264 caps after vsockenc.
    def profile_caps(self, v: Element) -> None:
        for n in self.p.downstream(v):
            if not isinstance(n, Caps):
                continue
            pinned = [s.get("profile") for s in n.structures if s.media_type == "video/x-h264" and s.raw("profile")]
            if not pinned:
                continue

            def fix(ed: _Editor, n: Caps = n) -> None:
                ed.replace(n, n.map(lambda st: st.without_field("profile") if st.media_type == "video/x-h264" else st))

            self.fail(
                "gst-profile-caps",
                f"{n.label()} pins profile={pinned[0]} after {v.label()}: when the host's VideoToolbox "
                "produces another profile (Main on H0/H1 hosts) nothing reaches the sink",
                _evidence(n, "FAILURES.md #6 profile-caps-mismatch; PIPELINES.md §5 rule 7", profile=pinned[0]),
                fix,
            )

    # PIPELINES.md §3 (socket-path > tcp-host > AF_VSOCK; tcp-host must be an IPv4 literal),
    # history `90f34f609` (AF_VSOCK never connected); FAILURES.md #21 port-mismatch, compared
    # only when --host/--port are given (SPEC.md §3).
    def transport(self, v: Element) -> None:
        props = _props_of(v, defaults=True)
        host, port = self.host, self.port
        socket_path = props.get("socket-path")
        tcp_host = props.get("tcp-host")
        tcp_port = props.get("tcp-port")
        explicit_port = v.has("tcp-port")
        rule21 = "FAILURES.md #21 port-mismatch; SPEC.md §3 (compared only when given)"

        def dial(ed: _Editor, new_host: str | None = None, drop_socket: bool = False) -> None:
            el = v.without_prop("socket-path") if drop_socket else v
            if new_host is not None:
                el = el.with_prop("tcp-host", new_host)
            if port is not None:
                el = el.with_prop("tcp-port", str(port))
            ed.replace(v, el)

        if socket_path:
            if host is None and port is None:
                self.note(f"{v.label()} uses socket-path={socket_path} (AF_UNIX): tcp-host/tcp-port are "
                          "ignored; inside a UTM guest that path is not the host's socket")
                return
            want = f"{host or tcp_host or DEFAULT_HOST}:{port or tcp_port}"
            self.fail(
                "port-mismatch",
                f"{v.label()} connects to the Unix socket {socket_path} (socket-path wins over "
                f"tcp-host), so it never dials {want}",
                _evidence(v, rule21, socket_path=socket_path, expected=want),
                lambda ed: dial(ed, host or tcp_host or DEFAULT_HOST, drop_socket=True),
            )
            return
        if not tcp_host:
            new_host = host or DEFAULT_HOST
            self.fail(
                "vsockenc-connect-failed",
                f"{v.label()} sets neither tcp-host nor socket-path, so it falls back to AF_VSOCK "
                f"CID {props.get('cid')} port {props.get('port')}, which never worked on macOS; set "
                f"tcp-host={new_host}",
                _evidence(v, "PIPELINES.md §3 and history 90f34f609; FAILURES.md #22 vsock-unavailable",
                          transport="vsock", cid=props.get("cid"), vsock_port=props.get("port")),
                lambda ed: dial(ed, new_host),
            )
        elif _ipv4(str(tcp_host)) is None:
            new_host = host or ("127.0.0.1" if str(tcp_host).strip().lower() == "localhost" else DEFAULT_HOST)
            self.fail(
                "vsockenc-connect-failed",
                f"{v.label()} has tcp-host={tcp_host}, but vsockenc accepts only an IPv4 literal "
                "(inet_pton), so it cannot connect (inside the guest the host is 10.0.2.2)",
                _evidence(v, "PIPELINES.md §3 (tcp-host: IPv4 literal)", tcp_host=tcp_host),
                lambda ed: dial(ed, new_host),
            )
        elif host is not None and _ipv4(str(tcp_host)) != _ipv4(host):
            self.fail(
                "port-mismatch",
                f"{v.label()} dials {tcp_host} (tcp-host) but the host is expected at {host}",
                _evidence(v, rule21, tcp_host=tcp_host, expected_host=host),
                lambda ed: dial(ed, host),
            )
        if port is not None:
            if tcp_port != port:
                where = f"tcp-port={tcp_port}" if explicit_port else f"tcp-port not set: element default {DEFAULT_TCP_PORT}"
                self.fail(
                    "port-mismatch",
                    f"{v.label()} dials port {tcp_port} ({where}) but the host listens on {port}",
                    _evidence(v, rule21, tcp_port=tcp_port, tcp_port_explicit=explicit_port, expected_port=port),
                    lambda ed: dial(ed),
                )
        elif not isinstance(tcp_port, int):
            self.note(f"{v.label()} has tcp-port={tcp_port}, which is not a number: gst-launch will refuse it")
        elif not 0 < tcp_port <= 65535:
            self.note(f"{v.label()} has tcp-port={tcp_port}, outside 1..65535: the connect uses "
                      f"{tcp_port & 0xFFFF} (16 bits)")

    # Advice that is not a failure: PIPELINES.md §5 rules 2, 4 and 8.
    def advice(self, path: _Path) -> None:
        if path.vsock:
            assert path.target is not None
            rule4 = ("PIPELINES.md §5 rule 4: `queue max-size-buffers=1 leaky=downstream` directly in front "
                     "of vsockenc, so capture never waits for the encoder round trip")
            elements = [n for n in path.nodes if isinstance(n, Element)]
            leaky = [i for i, n in enumerate(elements) if _leaky(n)]
            prev = elements[-1] if elements else None
            if leaky and leaky[-1] != len(elements) - 1:
                between = elements[leaky[-1] + 1 :]
                if not any(n.factory in _AFTER_QUEUE_HOLDERS | {"videorate"} for n in between):
                    self.note(f"{', '.join(n.label() for n in between)} sit{'s' if len(between) == 1 else ''} "
                              f"between the leaky queue and {path.target.label()}; {rule4}")
            elif prev is None or prev.factory != "queue":
                self.note(f"{path.target.label()} has no queue directly in front of it; {rule4}")
            else:
                leak = _leaky(prev)
                size = prev.prop("max-size-buffers")
                if leak != "downstream":
                    self.note(f"{prev.label()} is {'leaky=upstream (it keeps old frames)' if leak else 'not leaky'}; {rule4}")
                if (size or "").strip() != "1":
                    self.note(f"{prev.label()} holds {size or 'up to 200 (the default)'} buffers; {rule4}")
        convert = next((i for i, n in enumerate(path.nodes) if isinstance(n, Element) and n.factory == "videoconvert"), None)
        scale = next((i for i, n in enumerate(path.nodes) if isinstance(n, Element) and n.factory == "videoscale"), None)
        if convert is not None and scale is not None and convert < scale:
            self.note(f"{path.nodes[convert].label()} converts before {path.nodes[scale].label()} scales: scale "
                      "first (PIPELINES.md §5 rule 2, `379a7819a`: 4× less conversion work)")

    def vsockenc_notes(self, v: Element) -> None:
        known = set(VSOCKENC_DEFAULTS) | _VSOCKENC_INHERITED
        unknown = sorted({p.key for p in v.props} - known)
        if unknown:
            self.note(f"{v.label()} has no propert{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)} "
                      f"(known: {', '.join(VSOCKENC_DEFAULTS)}); gst-launch will refuse the pipeline")
        if v.has("bitrate"):
            self.note(f"{v.label()} bitrate={v.prop('bitrate')} is stored but never sent to the host (no "
                      "CONFIG_REQ), and it is documented as bit/s while Helix passes kbit/s (PIPELINES.md §3)")
        down = self.p.downstream(v)
        if not down:
            self.note(f"{v.label()}'s output is not linked to anything")
            return
        # PIPELINES.md §5 rule 8: end with h264parse config-interval=-1 ! …,alignment=au
        if not any(isinstance(n, Element) and n.factory == "h264parse" and (n.prop("config-interval") or "").strip() == "-1"
                   for n in down):
            self.note(f"no `h264parse config-interval=-1` after {v.label()}: SPS/PPS will not precede every "
                      "keyframe (PIPELINES.md §5 rule 8)")
        caps = [n for n in down if isinstance(n, Caps)]
        if not caps or caps[-1].structures[0].get("alignment") != "au":
            self.note(f"the last caps after {v.label()} do not ask for alignment=au, so the sink may get "
                      "partial access units (PIPELINES.md §5 rule 8)")

    def single_quotes(self) -> None:
        for el in self.p.elements:
            for prop in el.props:
                if len(prop.raw) >= 2 and prop.raw[0] == "'" and prop.raw[-1] == "'":
                    self.note(f"{el.label()} {prop.text}: gst_parse_launch keeps single quotes in the value "
                              f"(it becomes {prop.value}); only a shell removes them, so use double quotes")

    def unlinked(self) -> None:
        if len(self.p.nodes) < 2:
            return
        for el in self.p.elements:
            if not self.p.predecessors(el) and not self.p.successors(el):
                self.note(f"{el.label()} is not linked to anything (a missing '!' before it?)")


def _analyse(p: Pipeline, host: str | None, port: int | None) -> list[_Issue]:
    return _Linter(p, host, port).run()


def _correct(p: Pipeline, issues: list[_Issue], host: str | None, port: int | None) -> str | None:
    """Apply the mechanical fixes one at a time, re-checking after each, until none applies."""
    baseline = text = p.render()
    current, current_issues = p, issues
    for _ in range(_MAX_FIX_ROUNDS):
        for issue in current_issues:
            if issue.fix is None:
                continue
            editor = _Editor(current)
            try:
                issue.fix(editor)
            except _FixUnavailable:
                continue
            new_text = editor.render()
            if new_text == text:
                continue
            try:
                fixed = parse(new_text)
            except PipelineSyntaxError:
                continue  # never offer a correction that is not valid syntax
            current, text = fixed, new_text
            current_issues = _analyse(current, host, port)
            break
        else:
            break
    return text if text != baseline else None


def _check_host(host: str | None) -> str | None:
    if host is None:
        return None
    if _ipv4(host) is None:
        raise UsageError(f"--host {host!r} is not an IPv4 address; vsockenc's tcp-host accepts only IPv4 "
                         "literals (the guest dials 10.0.2.2)")
    return host.strip()


def _check_port(port: int | None) -> int | None:
    if port is None:
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= 65535:
        raise UsageError(f"--port {port!r} is not a TCP port (1..65535)")
    return port


def lint(
    pipeline: str,
    *,
    host: str | None = None,
    port: int | None = None,
    check: bool = False,
    check_timeout: float = 10.0,
) -> LintResult:
    """Check a pipeline string against the known rules; see the module doc.

    `host`/`port` are compared with vsockenc's tcp-host/tcp-port only when given. With
    `check`, the local GStreamer is asked (gst-inspect-1.0, with timeouts) whether each
    element exists. Raises `PipelineSyntaxError` for malformed pipelines and `UsageError`
    for a bad host/port; nothing else."""
    host, port = _check_host(host), _check_port(port)
    p = parse(pipeline)
    issues = _analyse(p, host, port)
    result = LintResult(
        pipeline=pipeline,
        parsed=p.render(),
        findings=[i.finding for i in issues if i.finding is not None],
        notes=[i.note for i in issues if i.note is not None],
        corrected=_correct(p, issues, host, port),
        vsockenc=vsockenc_properties(p) or None,
    )
    if p.command_line:
        result.notes.insert(0, "read as a gst-launch-1.0 command line: the pipeline in its arguments was linted")
    if check:
        findings, notes = check_elements(p, timeout=check_timeout)
        result.findings += findings
        result.notes += notes
    return result


# ── --check: ask the local GStreamer ──────────────────────────────────────────────────

_PROP_LINE = re.compile(r"^  ([a-z][a-z0-9-]*)\s*:", re.MULTILINE)


def _inspect_properties(output: str) -> set[str] | None:
    start = output.find("Element Properties:")
    if start < 0:
        return None
    section = output[start:]
    end = re.search(r"^\S", section[len("Element Properties:"):], re.MULTILINE)
    if end:
        section = section[: len("Element Properties:") + end.start()]
    return set(_PROP_LINE.findall(section))


def check_elements(
    pipeline: str | Pipeline,
    *,
    timeout: float = 10.0,
    budget: float = 60.0,
    inspect: str = "gst-inspect-1.0",
) -> tuple[list[Finding], list[str]]:
    """Ask `gst-inspect-1.0 ELEMENT` about each element (each call bounded by `timeout`,
    all of them by `budget`). A missing vsockenc is `vsockenc-missing`; any other missing
    element, and properties an element does not have, are notes."""
    p = _as_pipeline(pipeline)
    exe = shutil.which(inspect)
    if exe is None:
        return [], [f"--check skipped: {inspect} is not installed here"]
    findings: list[Finding] = []
    notes: list[str] = []
    deadline = time.monotonic() + budget
    seen: dict[str, tuple[bool, set[str] | None] | None] = {}
    for el in p.elements:
        if el.uri:
            continue
        if el.factory not in seen:
            left = deadline - time.monotonic()
            if left <= 0:
                seen[el.factory] = None
                notes.append(f"--check: ran out of time before asking about {el.factory}")
                continue
            try:
                proc = subprocess.run([exe, el.factory], capture_output=True, text=True,
                                      timeout=min(timeout, left), stdin=subprocess.DEVNULL, check=False)
            except subprocess.TimeoutExpired:
                seen[el.factory] = None
                notes.append(f"--check: `{inspect} {el.factory}` timed out after {min(timeout, left):.0f} s")
                continue
            except OSError as exc:
                seen[el.factory] = None
                notes.append(f"--check: cannot run {inspect}: {exc.strerror or exc}")
                continue
            installed = proc.returncode == 0
            seen[el.factory] = (installed, _inspect_properties(proc.stdout) if installed else None)
            if not installed:
                if el.factory == "vsockenc":
                    findings.append(Finding(
                        "vsockenc-missing",
                        f"`{inspect} vsockenc` finds no such element here, so this pipeline cannot start",
                        _evidence(el, "FAILURES.md #7 plugins-missing-in-image", inspect_exit=proc.returncode,
                                  inspect_output=(proc.stderr or proc.stdout).strip()[-300:]),
                    ))
                else:
                    notes.append(f"{el.label()}: `{inspect} {el.factory}` finds no such element on this machine")
        info = seen.get(el.factory)
        if info and info[0] and info[1]:
            unknown = sorted({p.key for p in el.props if "::" not in p.key} - info[1])
            if unknown:
                notes.append(f"{el.label()} has no propert{'ies' if len(unknown) > 1 else 'y'} "
                             f"{', '.join(unknown)} here (gst-inspect-1.0 {el.factory})")
    return findings, notes
