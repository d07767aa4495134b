"""The lint rules: what a Helix capture pipeline must (not) look like.

`RULES` is the table of rules: each has a name, the failure id it reports, a one-line
statement, and its source (the project page that explains it, or a public reference), so
every finding can say where its rule comes from. `_Linter` walks the capture paths of a
parsed pipeline (what feeds each vsockenc, and each PipeWire source's chain) and records an
`_Issue` per broken rule: a `Finding` with the rule, its id and the offending element, or
an informational note, and where the fix is mechanical a `Fix` that edits the pipeline
through `_Editor`. `_analyse()` runs every rule. The constants the rules check against
(host defaults, vsockenc's sink formats, PipeWire sources, converters) are here too.
"""

from __future__ import annotations

import ipaddress
import typing
from dataclasses import dataclass
from typing import Any

from helixdiag.findings import Finding
from helixdiag.pipeline.editing import _Editor, _FixUnavailable
from helixdiag.pipeline.syntax import Caps, Element, Pipeline, Vertex
from helixdiag.pipeline.vsockenc_config import DEFAULT_TCP_PORT, VSOCKENC_DEFAULTS, _props_of
from helixdiag.pixelcost import REFERENCE_SIZE, frame_cost, grouped
from helixdiag.protocol import PixelFormat

DEFAULT_HOST = "10.0.2.2"  # Helix's desktop pipeline history: defaultQEMUHost
DEFAULT_SIZE = REFERENCE_SIZE  # Helix's desktop pipeline history: HEAD sends native 1080p

# Inherited from GstObject / GstVideoEncoder: valid on vsockenc, not its own.
_VSOCKENC_INHERITED = {"name", "parent", "qos", "min-force-key-unit-interval"}
# Helix's desktop pipeline history: vsockenc's sink caps.
VSOCKENC_FORMATS = ("BGRx", "BGRA", "RGBx", "RGBA", "NV12")
_RGB_FORMATS = {
    "BGRx": PixelFormat.BGRA8888,
    "BGRA": PixelFormat.BGRA8888,
    "RGBx": PixelFormat.RGBA8888,
    "RGBA": PixelFormat.RGBA8888,
}

PIPEWIRE_SOURCES = frozenset({"pipewiresrc", "pipewirezerocopysrc"})
# Elements that make a converted copy, so the PipeWire buffer is released (Helix's desktop pipeline history).
CONVERTERS = frozenset({"videoconvert", "videoconvertscale"})
# Elements that must not sit between the leaky queue and the encoder (docs/failures/gst-pipeline-order.md).
_AFTER_QUEUE_HOLDERS = frozenset({"videoconvert", "videoscale", "videoconvertscale"})


Fix = typing.Callable[["_Editor"], None]  # evaluated at import: typing for Python 3.8 (guest agent)


@dataclass(frozen=True)
class Rule:
    """One lint rule: the failure id it reports, what it says, and where that is explained
    (a page of this project, relative to the repository, or a public URL)."""

    name: str
    failure_id: str
    statement: str
    source: str


def _page(failure_id: str) -> str:
    return f"docs/failures/{failure_id}.md"


RULES: dict[str, Rule] = {r.name: r for r in (
    Rule("no-always-copy", "pipewire-static-stall",
         "no always-copy=true on a PipeWire source that feeds vsockenc (virtio-gpu stops producing)",
         _page("pipewire-static-stall")),
    Rule("no-dmabuf-passthrough", "pipewire-shm-buffers",
         "no forced DMA-BUF passthrough: ScreenCast on virtio-gpu offers only shared memory",
         _page("pipewire-shm-buffers")),
    Rule("no-videorate", "gst-pipeline-order",
         "no videorate in vsockenc's input branch or in the PipeWire capture chain",
         _page("gst-pipeline-order")),
    Rule("no-fixed-framerate", "gst-pipeline-order",
         "no fixed framerate in the caps of the PipeWire capture chain (pipewiresrc is variable-rate)",
         _page("gst-pipeline-order")),
    Rule("convert-before-queue", "gst-pipeline-order",
         "videoconvert/videoscale come before the one-buffer leaky queue, never between it and the encoder",
         _page("gst-pipeline-order")),
    Rule("convert-after-source", "gst-pipeline-order",
         "a videoconvert follows the PipeWire source, so only a converted copy waits for the encoder",
         _page("gst-pipeline-order")),
    Rule("nv12-into-vsockenc", "gst-bgra-bandwidth",
         "vsockenc is fed NV12, pinned in caps after a videoconvert (4-byte formats send "
         f"{frame_cost(PixelFormat.BGRA8888, *REFERENCE_SIZE).ratio_text} the bytes)",
         _page("gst-bgra-bandwidth")),
    Rule("no-profile-caps", "gst-profile-caps",
         "no profile= in the H.264 caps after vsockenc: the host's encoder chooses the profile",
         _page("gst-profile-caps")),
    Rule("tcp-transport", "vsockenc-connect-failed",
         "vsockenc sets tcp-host (or socket-path); without either it tries AF_VSOCK, which never connects on macOS",
         _page("vsockenc-connect-failed")),
    Rule("tcp-host-ipv4", "vsockenc-connect-failed",
         "vsockenc's tcp-host is a numeric IPv4 address (it is parsed with inet_pton, never resolved)",
         _page("vsockenc-connect-failed")),
    Rule("dial-the-host", "port-mismatch",
         "vsockenc dials the host and port given with --host/--port (compared only when given)",
         _page("port-mismatch")),
    Rule("vsockenc-installed", "vsockenc-missing",
         "the local GStreamer has the vsockenc element (gst-inspect-1.0 vsockenc)",
         _page("vsockenc-missing")),
)}


@dataclass
class _Issue:
    finding: Finding | None = None
    note: str | None = None
    fix: Fix | None = None


def _evidence(node: Vertex, rule: Rule, **extra: Any) -> dict[str, Any]:
    """Where a finding points: the element (index, factory and name, text, character offset
    in the pipeline) and the rule it breaks, with the rule's source."""
    ev: dict[str, Any] = {"element_index": node.index, "element": node.text, "position": node.position}
    if isinstance(node, Element):
        ev["factory"] = node.factory
        if node.name:
            ev["element_name"] = node.name
    return {**ev, "rule": rule.name, "rule_statement": rule.statement, "source": rule.source, **extra}


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


class _Linter:
    def __init__(self, p: Pipeline, host: str | None, port: int | None) -> None:
        self.p = p
        self.host = host
        self.port = port
        self.issues: list[_Issue] = []
        self.vsockencs = p.find("vsockenc")

    def fail(self, rule: str, message: str, node: Vertex, extra: dict[str, Any] | None = None,
             fix: Fix | None = None) -> None:
        """Record that `node` breaks RULES[rule]."""
        r = RULES[rule]
        for issue in self.issues:  # two branches sharing a node report it once
            f = issue.finding
            if f and (f.failure_id, f.message, f.evidence.get("element_index")) == (
                    r.failure_id, message, node.index):
                return
        self.issues.append(_Issue(Finding(r.failure_id, message, _evidence(node, r, **(extra or {}))), None, fix))

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

    # Helix's desktop pipeline history + docs/failures/gst-pipeline-order.md (`96c92fc67` introduced, `7d8db571d` reverted):
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
                "no-always-copy",
                f"{src.label()} has always-copy=true, which stops PipeWire after the first render on "
                "virtio-gpu (the platform of the vsockenc path)",
                src, fix=fix,
            )

    # Helix's desktop pipeline history (`94ac4493b`/`1e62082fd`), docs/failures/gst-pipeline-order.md
    # screencast-shm-not-dmabuf: `pipewirezerocopysrc … buffer-type=dmabuf-passthrough` on
    # virtio-gpu fails with "no more input formats"; HEAD went back to pipewiresrc.
    def zero_copy_source(self, path: _Path) -> None:
        src = path.nodes[0] if path.nodes else None
        if not (isinstance(src, Element) and src.factory == "pipewirezerocopysrc"):
            return
        if (src.prop("buffer-type") or "").strip() != "dmabuf-passthrough":
            self.note(f"{src.label()} feeds vsockenc: on virtio-gpu Mutter offers no DMA-BUF, and the Helix "
                      "pipeline uses `pipewiresrc … ! videoconvert ! video/x-raw,format=NV12` (see "
                      "`helixdiag explain pipewire-shm-buffers`)")
            return

        def fix(ed: _Editor, src: Element = src) -> None:
            props = {"path": src.prop("pipewire-node-id"), "do-timestamp": "true",
                     "keepalive-time": src.prop("keepalive-time"), "fd": src.prop("pipewire-fd")}
            ed.replace(src, Element.create("pipewiresrc", {k: v for k, v in props.items() if v is not None}))

        self.fail(
            "no-dmabuf-passthrough",
            f"{src.label()} forces DMA-BUF passthrough, but ScreenCast on virtio-gpu (Mutter, UTM) offers "
            "only shared-memory buffers: negotiation fails with \"no more input formats\"; use pipewiresrc "
            "and the NV12 pixel path",
            src, {"buffer_type": "dmabuf-passthrough"}, fix,
        )

    # docs/failures/gst-pipeline-order.md videorate-breaks-negotiation (`ef7639054`/`7bd31c1c1`/`81547decc`),
    # Helix's desktop pipeline history: no videorate in the vsockenc branch or the virtio source chain.
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
                "no-videorate",
                f"{n.label()} in {where}: a fixed output rate fights pipewiresrc's variable (0/1) "
                "frame rate and breaks negotiation (output dropped to 1 frame when it was tried)",
                n, fix=fix,
            )

    # Helix's desktop pipeline history: no fixed `framerate` capsfilter on
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
                "no-fixed-framerate",
                f"{n.label()} pins framerate={rates[0]} on the PipeWire capture chain: a fixed "
                "frame rate breaks pipewiresrc's variable-rate negotiation on virtio-gpu",
                n, {"framerate": rates[0], "capture_source": path.nodes[0].text}, fix,
            )

    # docs/failures/gst-pipeline-order.md leaky-queue-before-convert-stall (`d6ff0e538`), Helix's desktop pipeline history
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
                "convert-before-queue",
                f"{n.label()} comes after the leaky {queue.label()}: the PipeWire buffers stay "
                f"referenced across {path.target.factory}'s blocking round trip and capture stalls after "
                "about 2 frames; convert before the queue",
                n, {"queue_index": queue.index, "queue": queue.text}, fix,
            )

    # Helix's desktop pipeline history ("no videoconvert before the queue") and history
    # `4b1da106f`/`a7eadb6fc`: without a videoconvert right after pipewiresrc, the raw
    # PipeWire buffers themselves wait in the queue / the TCP send (docs/failures/gst-pipeline-order.md).
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
                      "virtio-gpu offers no DMA-BUF, see `helixdiag explain pipewire-shm-buffers`")
            return
        holder = leaky[0] if leaky else path.target
        first = path.nodes[1] if len(path.nodes) > 1 else path.target

        def fix(ed: _Editor, src: Vertex = src, first: Vertex | None = first) -> None:
            if first is None:
                raise _FixUnavailable
            ed.insert_between(src, first, [Element.create("videoconvert")])

        assert holder is not None
        self.fail(
            "convert-after-source",
            f"no videoconvert between {src.label()} and {holder.label()}: the raw PipeWire buffers are "
            f"held {'in the queue and ' if leaky else ''}across the encoder's blocking round trip "
            "(capture stalls) and go out as BGRx; put `videoconvert ! video/x-raw,format=NV12` right "
            "after the source",
            src, {"held_by": holder.text, "held_by_index": holder.index}, fix,
        )

    # Helix's desktop pipeline history and docs/failures/gst-bgra-bandwidth.md pixel-bandwidth-slirp: feed vsockenc NV12;
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
                self.note(f"{pinned.label()} asks for DMA-BUF memory; Mutter on virtio-gpu offers none: "
                          "expect 'no more input formats' there")
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
                "nv12-into-vsockenc",
                f"{pinned.label()} feeds vsockenc {fmt}: {self._cost(fmt, size, size_from)}",
                pinned, {"format": fmt, **self._bytes(fmt, size, size_from)}, fix,
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
            "nv12-into-vsockenc",
            f"{v.label()}'s input format is not pinned ({what}): vsockenc lists BGRx first and PipeWire "
            f"on virtio-gpu delivers BGRx, so expect {self._cost('BGRx', size, size_from)}",
            v, {"format": None, "assumed_format": "BGRx", **self._bytes("BGRx", size, size_from)}, fix_unpinned,
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
        """Bytes per frame (pixelcost, from protocol.frame_layout), in `fmt` and in NV12."""
        cost = frame_cost(_RGB_FORMATS[fmt], *size)
        return {"size": f"{cost.width}x{cost.height}", "size_from": size_from,
                "bytes_per_frame": cost.bytes_per_frame, "nv12_bytes_per_frame": cost.nv12_bytes_per_frame,
                "ratio": cost.ratio}

    @staticmethod
    def _cost(fmt: str, size: tuple[int, int], size_from: str) -> str:
        cost = frame_cost(_RGB_FORMATS[fmt], *size)
        return (f"{grouped(cost.bytes_per_frame)} bytes per {cost.width}x{cost.height} frame ({size_from}) vs "
                f"{grouped(cost.nv12_bytes_per_frame)} in NV12 ({cost.ratio_text}) over SLiRP TCP, which "
                "costs about 67 ms per 3.1 MB")

    # docs/failures/gst-profile-caps.md profile-caps-mismatch (`19df4be73`), Helix's desktop pipeline history: no
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
                "no-profile-caps",
                f"{n.label()} pins profile={pinned[0]} after {v.label()}: when the host's VideoToolbox "
                "produces another profile (Main on H0/H1 hosts) nothing reaches the sink",
                n, {"profile": pinned[0]}, fix,
            )

    # Helix's desktop pipeline history (socket-path > tcp-host > AF_VSOCK; tcp-host must be an IPv4 literal),
    # history `90f34f609` (AF_VSOCK never connected); docs/failures/port-mismatch.md port-mismatch, compared
    # only when --host/--port are given (docs/run.md).
    def transport(self, v: Element) -> None:
        props = _props_of(v, defaults=True)
        host, port = self.host, self.port
        socket_path = props.get("socket-path")
        tcp_host = props.get("tcp-host")
        tcp_port = props.get("tcp-port")
        explicit_port = v.has("tcp-port")

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
                "dial-the-host",
                f"{v.label()} connects to the Unix socket {socket_path} (socket-path wins over "
                f"tcp-host), so it never dials {want}",
                v, {"socket_path": socket_path, "expected": want},
                lambda ed: dial(ed, host or tcp_host or DEFAULT_HOST, drop_socket=True),
            )
            return
        if not tcp_host:
            new_host = host or DEFAULT_HOST
            self.fail(
                "tcp-transport",
                f"{v.label()} sets neither tcp-host nor socket-path, so it falls back to AF_VSOCK "
                f"CID {props.get('cid')} port {props.get('port')}, which never worked on macOS; set "
                f"tcp-host={new_host}",
                v, {"transport": "vsock", "cid": props.get("cid"), "vsock_port": props.get("port")},
                lambda ed: dial(ed, new_host),
            )
        elif _ipv4(str(tcp_host)) is None:
            new_host = host or ("127.0.0.1" if str(tcp_host).strip().lower() == "localhost" else DEFAULT_HOST)
            self.fail(
                "tcp-host-ipv4",
                f"{v.label()} has tcp-host={tcp_host}, but vsockenc accepts only an IPv4 literal "
                "(inet_pton), so it cannot connect (inside the guest the host is 10.0.2.2)",
                v, {"tcp_host": tcp_host}, lambda ed: dial(ed, new_host),
            )
        elif host is not None and _ipv4(str(tcp_host)) != _ipv4(host):
            self.fail(
                "dial-the-host",
                f"{v.label()} dials {tcp_host} (tcp-host) but the host is expected at {host}",
                v, {"tcp_host": tcp_host, "expected_host": host}, lambda ed: dial(ed, host),
            )
        if port is not None:
            if tcp_port != port:
                where = f"tcp-port={tcp_port}" if explicit_port else f"tcp-port not set: element default {DEFAULT_TCP_PORT}"
                self.fail(
                    "dial-the-host",
                    f"{v.label()} dials port {tcp_port} ({where}) but the host listens on {port}",
                    v, {"tcp_port": tcp_port, "tcp_port_explicit": explicit_port, "expected_port": port},
                    lambda ed: dial(ed),
                )
        elif not isinstance(tcp_port, int):
            self.note(f"{v.label()} has tcp-port={tcp_port}, which is not a number: gst-launch will refuse it")
        elif not 0 < tcp_port <= 65535:
            self.note(f"{v.label()} has tcp-port={tcp_port}, outside 1..65535: the connect uses "
                      f"{tcp_port & 0xFFFF} (16 bits)")

    # Advice that is not a failure: Helix's desktop pipeline history 2, 4 and 8.
    def advice(self, path: _Path) -> None:
        if path.vsock:
            assert path.target is not None
            rule4 = ("put `queue max-size-buffers=1 leaky=downstream` directly in front of vsockenc, so "
                     "capture never waits for the encoder round trip")
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
                      "first, so the conversion works on the smaller picture")

    def vsockenc_notes(self, v: Element) -> None:
        known = set(VSOCKENC_DEFAULTS) | _VSOCKENC_INHERITED
        unknown = sorted({p.key for p in v.props} - known)
        if unknown:
            self.note(f"{v.label()} has no propert{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)} "
                      f"(known: {', '.join(VSOCKENC_DEFAULTS)}); gst-launch will refuse the pipeline")
        if v.has("bitrate"):
            self.note(f"{v.label()} bitrate={v.prop('bitrate')} is stored but never sent to the host (no "
                      "CONFIG_REQ), and it is documented as bit/s while Helix passes kbit/s")
        down = self.p.downstream(v)
        if not down:
            self.note(f"{v.label()}'s output is not linked to anything")
            return
        # Helix's desktop pipeline history: end with h264parse config-interval=-1 ! …,alignment=au
        if not any(isinstance(n, Element) and n.factory == "h264parse" and (n.prop("config-interval") or "").strip() == "-1"
                   for n in down):
            self.note(f"no `h264parse config-interval=-1` after {v.label()}: SPS/PPS will not precede every "
                      "keyframe")
        caps = [n for n in down if isinstance(n, Caps)]
        if not caps or caps[-1].structures[0].get("alignment") != "au":
            self.note(f"the last caps after {v.label()} do not ask for alignment=au, so the sink may get "
                      "partial access units")

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
