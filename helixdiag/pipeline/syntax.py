"""gst-launch syntax: the pipeline model, the lexer and parser, and `PipelineSyntaxError`.

`parse()` reads gst-launch syntax, following GStreamer's own lexer (gst/parse/parse.l) for
what these pipelines use, into a `Pipeline` of `Element`s (with `Prop`s), `Caps` filters
(of `Structure`s) and `Ref`s to named elements; a pasted `gst-launch-1.0 …` command line is
unwrapped first. The model renders itself back (`Pipeline.render()`, `.argv()`), and
anything malformed raises `PipelineSyntaxError`.
"""

from __future__ import annotations

import re
import shlex
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from helixdiag.errors import UsageError

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


def _quoting(text: str) -> Iterator[tuple[int, str, str | None, str | None]]:
    """Walk `text` the way gst-launch quotes it: every character that is not escaped by a
    backslash, with the quote open before it and after it (None = outside quotes)."""
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        before = quote
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        yield i, ch, before, quote
        i += 1


def _split_top(text: str, sep: str) -> list[tuple[int, str]]:
    """Split at `sep` outside quotes, brackets and escapes; (offset, part) pairs."""
    parts: list[tuple[int, str]] = []
    depth = 0
    start = 0
    for i, ch, before, after in _quoting(text):
        if before or after:
            continue  # quoted text, or a quote itself
        if ch in "{[<(":
            depth += 1
        elif ch in "}]>)":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            parts.append((start, text[start:i]))
            start = i + 1
    parts.append((start, text[start:]))
    return parts


def _unbalanced_quote(text: str) -> int | None:
    """Offset of a quote that is never closed (escapes respected), else None."""
    opened, quote = 0, None
    for i, _ch, before, after in _quoting(text):
        if before is None and after is not None:
            opened = i
        quote = after
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

    @property
    def bare(self) -> bool:
        """Only media types (`video/x-raw`): no field and no feature constrains anything."""
        return all(not s.fields and not s.features for s in self.structures)

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


Node = typing.Union[Element, Caps, Ref]  # noqa: UP007 - evaluated at import, Python 3.8 (guest agent)
Vertex = typing.Union[Element, Caps]  # noqa: UP007 - as Node


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
            for a, b in zip(chain, chain[1:]):  # noqa: B905 - no strict= on 3.8 (guest agent)
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


def _as_pipeline(pipeline: str | Pipeline) -> Pipeline:
    return pipeline if isinstance(pipeline, Pipeline) else parse(pipeline)
