"""PipeWire facts as data: pure parsing and judging, no I/O.

Where the client socket is (`socket_location`, from an environment mapping), the
`pw-cli info 0` text (`parse_core_info`), the `pw-dump` JSON (`parse_pw_dump` → `PwGraph` of
nodes, ports, links, clients), the output of a `gst-launch-1.0 -v … ! identity
silent=false` consumer (`parse_consumer`), the frame timing over a window (`frame_stats`)
and the buffer memory type (`classify_memory`). Running the tools is `observe.pipewire`'s job.

Behaviour of PipeWire 0.3.65 / GStreamer 1.22 that shapes this:

* With no daemon every client fails at once: pw-cli `Error: "failed to connect: Host is
  down"`, pw-dump `can't connect: Host is down`.
* pipewiresrc on a node that does not exist waits ~30 s, so the node is looked up in
  `pw-dump` first. `path=` takes the node id; `target-object=` a name or serial, never the id.
* A stalled producer is invisible in the graph (node `running`, link `active`) and
  pipewiresrc never errors or ends: only frame timing shows it. Do not use `keepalive-time`,
  it re-sends the last buffer and hides the stall.
* The caps do not show the memory type on these versions; the `pipewirepool` LOG line
  `memory type MemPtr|MemFd|DmaBuf` does. Newer stacks put `(memory:DMABuf)` in the caps.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from helixdiag.observe.parsers.common import ParseError, int_or_none

DEFAULT_REMOTE = "pipewire-0"
SOCKET_TIMEOUT = 2.0
TOOL_TIMEOUT = 5.0

# spa/buffer/buffer.h: enum spa_data_type. A port's Buffers param `dataType` is a bitmask of 1<<type.
SPA_DATA_TYPES = {0: "Invalid", 1: "MemPtr", 2: "MemFd", 3: "DmaBuf", 4: "MemId"}
SHM_TYPES = frozenset({"MemPtr", "MemFd", "MemId"})
VIDEO_SOURCE_CLASSES = ("Video/Source", "Stream/Output/Video")
SESSION_MANAGERS = ("WirePlumber", "pipewire-media-session")


# =========================================================================== the socket

@dataclass(frozen=True)
class SocketLocation:
    """Where a PipeWire client would connect, and which variable decided it."""

    path: str | None  # None: no runtime directory known at all
    source: str  # "$PIPEWIRE_REMOTE", "$PIPEWIRE_RUNTIME_DIR", "$XDG_RUNTIME_DIR" or why none
    remote: str  # the remote name (PIPEWIRE_REMOTE or "pipewire-0")

    def describe(self) -> dict[str, Any]:
        return {"socket": self.path, "socket_from": self.source, "remote": self.remote}


def socket_location(env: Mapping[str, str]) -> SocketLocation:
    """libpipewire's rule: PIPEWIRE_REMOTE (an absolute path is used as is), else the remote name
    in $PIPEWIRE_RUNTIME_DIR, else $XDG_RUNTIME_DIR (then $USERPROFILE)."""
    remote = env.get("PIPEWIRE_REMOTE") or DEFAULT_REMOTE
    if remote.startswith("/"):
        return SocketLocation(remote, "$PIPEWIRE_REMOTE", remote)
    for var in ("PIPEWIRE_RUNTIME_DIR", "XDG_RUNTIME_DIR", "USERPROFILE"):
        base = env.get(var)
        if base:
            return SocketLocation(os.path.join(base, remote), f"${var}", remote)
    return SocketLocation(None, "none of PIPEWIRE_REMOTE, PIPEWIRE_RUNTIME_DIR, XDG_RUNTIME_DIR is set",
                          remote)


def other_sessions(found: list[str], mine: str | None) -> list[str]:
    """PipeWire sockets of other sessions (e.g. /run/user/1000/pipewire-0), for the hint
    "run as the desktop user": the usual mistake is `docker exec` as root without its env."""
    real = os.path.realpath(mine) if mine else None
    return sorted(p for p in found if os.path.realpath(p) != real)


def parse_core_info(text: str) -> dict[str, str]:
    """The header of `pw-cli info 0`: version, name, user-name, host-name, cookie."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^\*?\s+([a-z-]+): (.*)$", line)
        if m and m.group(1) in ("version", "name", "user-name", "host-name", "type"):
            out.setdefault(m.group(1), m.group(2).strip().strip('"'))
    return out


# =========================================================================== the graph

@dataclass(frozen=True)
class VideoFormat:
    """A SPA video format (EnumFormat / Format param or a link's format)."""

    media_subtype: str | None
    format: str | None
    width: int | None
    height: int | None
    framerate: str | None  # "30/1"; "0/1" = variable (damage-driven)
    modifier: int | None  # present only for DMA-BUF formats

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"format": self.format, "size": self.size, "framerate": self.framerate}
        if self.media_subtype not in (None, "raw"):
            d["subtype"] = self.media_subtype
        if self.modifier is not None:
            d["modifier"] = hex(self.modifier)
        return d

    @property
    def size(self) -> str | None:
        return f"{self.width}x{self.height}" if self.width and self.height else None


def _video_format(param: Any) -> VideoFormat | None:
    if not isinstance(param, dict) or param.get("mediaType") not in (None, "video"):
        return None
    size = param.get("size")
    rate = param.get("framerate")
    modifier = param.get("modifier")
    if isinstance(modifier, dict):  # a choice: {"default": …, "alt1": …}
        modifier = modifier.get("default")
    return VideoFormat(
        media_subtype=_scalar(param.get("mediaSubtype")),
        format=_scalar(param.get("format")),
        width=size.get("width") if isinstance(size, dict) and isinstance(size.get("width"), int) else None,
        height=size.get("height") if isinstance(size, dict) and isinstance(size.get("height"), int) else None,
        framerate=(f"{rate.get('num')}/{rate.get('denom')}" if isinstance(rate, dict) and "num" in rate
                   else None),
        modifier=modifier if isinstance(modifier, int) and not isinstance(modifier, bool) else None,
    )


def _scalar(value: Any) -> str | None:
    """A pw-dump value that may be a choice ({"default": x, …}) → its default, as text."""
    if isinstance(value, dict):
        value = value.get("default")
    return None if value is None else str(value)


def data_types(mask: int) -> list[str]:
    """Names of the SPA data types set in a Buffers `dataType` bitmask (6 → MemPtr, MemFd)."""
    return [name for bit, name in SPA_DATA_TYPES.items() if bit and mask & (1 << bit)]


@dataclass(frozen=True)
class PwPort:
    id: int
    node_id: int | None
    direction: str | None
    name: str | None
    data_types: tuple[str, ...] | None  # from the Buffers param, when negotiated


@dataclass(frozen=True)
class PwLink:
    id: int
    output_node: int | None
    output_port: int | None
    input_node: int | None
    input_port: int | None
    state: str | None
    error: str | None
    format: VideoFormat | None


@dataclass(frozen=True)
class PwNode:
    id: int
    serial: int | None
    name: str | None
    description: str | None
    media_class: str | None
    state: str | None  # creating | suspended | idle | running | error
    error: str | None
    client_id: int | None
    application: str | None  # the owning client's application.name
    format: VideoFormat | None  # negotiated (Format param); None while suspended
    offered: tuple[VideoFormat, ...]  # EnumFormat
    n_output_ports: int | None

    @property
    def is_video_source(self) -> bool:
        return bool(self.media_class) and self.media_class.startswith(VIDEO_SOURCE_CLASSES)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id, "serial": self.serial, "name": self.name, "media_class": self.media_class,
            "state": self.state,
        }
        if self.error:
            d["error"] = self.error
        if self.description and self.description != self.name:
            d["description"] = self.description
        if self.application:
            d["application"] = self.application
        if self.format is not None:
            d["format"] = self.format.describe()
        elif self.offered:
            d["offered_formats"] = [f.describe() for f in self.offered[:4]]
        return d


@dataclass(frozen=True)
class PwGraph:
    core: dict[str, Any]
    nodes: tuple[PwNode, ...]
    ports: tuple[PwPort, ...]
    links: tuple[PwLink, ...]
    clients: dict[int, str]  # id → application.name

    def node(self, node_id: int) -> PwNode | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    def video_sources(self) -> list[PwNode]:
        return [n for n in self.nodes if n.is_video_source]

    def find(self, ref: str) -> tuple[PwNode | None, str | None]:
        """A node by id, serial or node.name (in that order); also how it matched."""
        ref = ref.strip()
        if ref.isascii() and ref.isdigit():
            number = int(ref)
            for key, attr in (("id", "id"), ("serial", "serial")):
                hit = next((n for n in self.nodes if getattr(n, attr) == number), None)
                if hit is not None:
                    return hit, key
        for key, attr in (("node.name", "name"), ("node.description", "description")):
            hit = next((n for n in self.nodes if getattr(n, attr) == ref), None)
            if hit is not None:
                return hit, key
        return None, None

    def links_from(self, node_id: int) -> list[PwLink]:
        return [lk for lk in self.links if lk.output_node == node_id]

    def output_ports(self, node_id: int) -> list[PwPort]:
        return [p for p in self.ports if p.node_id == node_id and p.direction == "output"]

    def session_manager(self) -> str | None:
        """WirePlumber or pipewire-media-session, whichever client is connected (None: none is;
        then nothing links a consumer to a source)."""
        for name in self.clients.values():
            for sm in SESSION_MANAGERS:
                if name and name.startswith(sm):
                    return name
        return None

    def choose_source(self) -> PwNode | None:
        """The video source a consumer most likely wants: one already streaming to someone
        (the desktop's own pipeline), then the newest."""
        order = {"running": 0, "idle": 1, "suspended": 2}
        sources = self.video_sources()
        if not sources:
            return None
        return min(sources, key=lambda n: (order.get(n.state or "", 3), -(n.serial or n.id)))


def merge_dump_arrays(text: str) -> list[dict[str, Any]]:
    """pw-dump's objects. pw-dump 0.3.65 does not always print one array: objects removed
    while it enumerates come as extra arrays of `{"id": N, "info": null}` (seen before the main
    array). Apply the arrays in order: a null info removes the id, anything else adds it."""
    decoder = json.JSONDecoder()
    objs: dict[int, dict[str, Any]] = {}
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            break
        try:
            data, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ParseError(f"pw-dump output is not JSON: {exc}") from None
        if not isinstance(data, list):
            raise ParseError("pw-dump output is not a JSON array")
        for o in data:
            if not isinstance(o, dict) or not isinstance(o.get("id"), int) or isinstance(o["id"], bool):
                continue
            if o.get("info") is None and "type" not in o:
                objs.pop(o["id"], None)
            else:
                objs[o["id"]] = o
    return list(objs.values())


def parse_pw_dump(text: str) -> PwGraph:
    """`pw-dump` output (a JSON array of objects) → the graph. Tolerant of missing fields."""
    objs = merge_dump_arrays(text)
    info_of = {o["id"]: (o.get("info") if isinstance(o.get("info"), dict) else {}) for o in objs}

    def props(o: dict) -> dict:
        p = info_of[o["id"]].get("props")
        return p if isinstance(p, dict) else {}

    def params(o: dict) -> dict:
        p = info_of[o["id"]].get("params")
        return p if isinstance(p, dict) else {}

    core: dict[str, Any] = {}
    clients: dict[int, str] = {}
    ports, links, node_objs = [], [], []
    for o in objs:
        kind = str(o.get("type", "")).rsplit(":", 1)[-1]
        info = info_of[o["id"]]
        if kind == "Core":
            core = {k: info.get(k) for k in ("version", "name", "user-name", "host-name") if k in info}
        elif kind == "Client":
            clients[o["id"]] = str(props(o).get("application.name") or props(o).get("client.name") or "")
        elif kind == "Port":
            mask = None
            for b in params(o).get("Buffers") or []:
                dt = b.get("dataType") if isinstance(b, dict) else None
                dt = dt.get("default") if isinstance(dt, dict) else dt
                if isinstance(dt, int):
                    mask = (mask or 0) | dt
            p = props(o)
            ports.append(PwPort(o["id"], int_or_none(p.get("node.id")), info.get("direction"),
                                p.get("port.name"), tuple(data_types(mask)) if mask is not None else None))
        elif kind == "Link":
            links.append(PwLink(
                o["id"], int_or_none(info.get("output-node-id")), int_or_none(info.get("output-port-id")),
                int_or_none(info.get("input-node-id")), int_or_none(info.get("input-port-id")),
                info.get("state"), info.get("error"), _video_format(info.get("format")),
            ))
        elif kind == "Node":
            node_objs.append(o)
    nodes = []
    for o in node_objs:
        info, p, prm = info_of[o["id"]], props(o), params(o)
        fmt = next((f for f in map(_video_format, prm.get("Format") or []) if f), None)
        offered = tuple(f for f in map(_video_format, prm.get("EnumFormat") or []) if f)
        client_id = int_or_none(p.get("client.id"))
        nodes.append(PwNode(
            id=o["id"], serial=int_or_none(p.get("object.serial")), name=p.get("node.name"),
            description=p.get("node.description") or p.get("node.nick"),
            media_class=p.get("media.class"), state=info.get("state"), error=info.get("error"),
            client_id=client_id, application=clients.get(client_id) if client_id is not None else None,
            format=fmt, offered=offered, n_output_ports=int_or_none(info.get("n-output-ports")),
        ))
    return PwGraph(core, tuple(nodes), tuple(ports), tuple(links), clients)


# =========================================================================== the consumer

FRAME_RE = re.compile(r"last-message = chain\s+\*+ \([^)]*\) \((\d+) bytes, .*?pts: ([0-9:.]+|none)")
CAPS_RE = re.compile(r"pipewiresrc\d*\.GstPad:src: caps = (.*)$")
MEMTYPE_RE = re.compile(r"memory type (\w+)")
NS = 1e-9


@dataclass(frozen=True)
class Line:
    t: float  # seconds since the consumer started, when the line arrived
    text: str


@dataclass(frozen=True)
class ConsumerLog:
    """What a `gst-launch-1.0 -v pipewiresrc … ! identity silent=false ! fakesink` run showed."""

    frames: tuple[float, ...]  # arrival time of each frame (s since start)
    frame_bytes: tuple[int, ...]
    pts: tuple[float | None, ...]  # buffer timestamps (do-timestamp=true), seconds
    playing_at: float | None  # "Setting pipeline to PLAYING": linked and negotiated
    caps: str | None  # pipewiresrc's negotiated src caps
    memory_types: tuple[str, ...]  # pipewirepool's "memory type X" (GST_DEBUG=pipewirepool:6)
    errors: tuple[str, ...]  # ERROR lines with their debug info, "Failed to …" lines


def parse_consumer(stdout: list[Line], stderr: list[Line]) -> ConsumerLog:
    frames: list[float] = []
    sizes: list[int] = []
    pts: list[float | None] = []
    playing = caps = None
    errors: list[str] = []
    lines = stdout + stderr
    for i, line in enumerate(lines):
        text = line.text
        if (m := FRAME_RE.search(text)) is not None:
            frames.append(line.t)
            sizes.append(int(m.group(1)))
            pts.append(parse_clock_time(m.group(2)))
        elif playing is None and text.startswith("Setting pipeline to PLAYING"):
            playing = line.t
        elif caps is None and (m := CAPS_RE.search(text)) is not None:
            caps = m.group(1).strip()
        elif text.startswith("ERROR:") or text.startswith("Failed to") or "WARNING: erroneous pipeline" in text:
            detail = text.strip()
            nxt = lines[i + 2].text.strip() if text.startswith("ERROR: from") and i + 2 < len(lines) else ""
            if nxt and lines[i + 1].text.startswith("Additional debug info"):
                detail += f" ({nxt})"
            errors.append(detail)
    mem = []
    for line in stderr:
        if (m := MEMTYPE_RE.search(line.text)) is not None and m.group(1) not in mem:
            mem.append(m.group(1))
    return ConsumerLog(tuple(frames), tuple(sizes), tuple(pts), playing, caps, tuple(mem), tuple(errors))


def parse_clock_time(text: str) -> float | None:
    """GStreamer's H:MM:SS.NNNNNNNNN → seconds (None for "none")."""
    m = re.fullmatch(r"(\d+):(\d\d):(\d\d)\.(\d{9})", text)
    if not m:
        return None
    h, mi, s, ns = (int(g) for g in m.groups())
    return h * 3600 + mi * 60 + s + ns * NS


def parse_caps(caps: str | None) -> dict[str, Any]:
    """The first structure of a caps string: media type, memory feature, format, size, rate."""
    if not caps:
        return {}
    first = caps.split(";")[0]
    m = re.match(r"\s*([\w/-]+)(?:\(([^)]*)\))?", first)
    out: dict[str, Any] = {"media": m.group(1) if m else None, "features": m.group(2) if m and m.group(2) else None}
    for key in ("format", "drm-format"):
        if (v := re.search(rf"(?<![\w-]){key}=\(string\)([\w:]+)", first)) is not None:
            out[key.replace("-", "_")] = v.group(1)
    w = re.search(r"width=\(int\)(\d+)", first)
    h = re.search(r"height=\(int\)(\d+)", first)
    if w and h:
        out["size"] = f"{w.group(1)}x{h.group(1)}"
    if (r := re.search(r"framerate=\(fraction\)(\d+/\d+)", first)) is not None:
        out["framerate"] = r.group(1)
    return out


@dataclass(frozen=True)
class FrameStats:
    """Frame timing over one window, in seconds relative to the window's start."""

    window_s: float
    frames: int
    first_frame_s: float | None
    last_frame_s: float | None
    since_last_s: float  # the silence at the end of the window (the whole window if no frame)
    max_gap_s: float | None
    fps: float | None  # frames per second while they flowed (first → last frame)
    fps_window: float  # frames / window

    @property
    def burst_then_silence(self) -> bool:
        return self.frames > 0 and self.since_last_s >= stall_silence(self.window_s)

    def describe(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 3)

        return {
            "frames": self.frames, "window_s": r(self.window_s), "fps": r(self.fps),
            "fps_over_window": r(self.fps_window), "first_frame_s": r(self.first_frame_s),
            "last_frame_s": r(self.last_frame_s), "since_last_frame_s": r(self.since_last_s),
            "max_gap_s": r(self.max_gap_s),
        }


def stall_silence(window_s: float) -> float:
    """How long the end of the window must be silent to call it a stall: half of it (frames
    arrive every 33 ms at 30 fps, a damage-driven desktop still sends a few per second while
    anything moves), and never less than 0.5 s."""
    return max(0.5, window_s / 2)


def frame_stats(times: list[float] | tuple[float, ...], start: float, end: float) -> FrameStats:
    """Timing of the frames that arrived in [start, end] (times on the same clock)."""
    inside = sorted(t - start for t in times if start <= t <= end)
    window = max(end - start, 1e-9)
    if not inside:
        return FrameStats(window, 0, None, None, window, None, None, 0.0)
    gaps = [b - a for a, b in zip(inside, inside[1:])]  # noqa: B905 - no strict= on 3.8 (guest agent)
    span = inside[-1] - inside[0]
    fps = (len(inside) - 1) / span if len(inside) > 1 and span > 0 else None
    return FrameStats(window, len(inside), inside[0], inside[-1], window - inside[-1],
                      max(gaps) if gaps else None, fps, len(inside) / window)


def classify_memory(caps: str | None, pool_types: tuple[str, ...] | list[str],
                    offered: tuple[str, ...] | None) -> tuple[str, str]:
    """("dmabuf" | "shm" | "unknown", how we know) for the consumer's buffers.

    `pool_types`: pipewirepool's LOG lines; `offered`: the producer port's Buffers dataType."""
    features = parse_caps(caps).get("features") or ""
    if "memory:DMABuf" in features:
        return "dmabuf", f"negotiated caps have the memory:DMABuf feature ({caps})"
    if "DmaBuf" in pool_types:
        return "dmabuf", "pipewiresrc's buffer pool wraps DmaBuf memory"
    if pool_types and all(t in SHM_TYPES for t in pool_types):
        return "shm", f"pipewiresrc's buffer pool wraps {'/'.join(pool_types)} memory (shared memory)"
    if offered is not None and "DmaBuf" not in offered:
        return "shm", f"the producer's port offers only {'/'.join(offered) or 'no'} buffers, never DmaBuf"
    return "unknown", "neither the caps nor the buffer pool said which memory the frames are in"
