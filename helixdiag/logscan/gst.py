"""The vsockenc GST_DEBUG log scanner (`_GstScanner`) and its effect kinds.

It splits each GST_DEBUG line into time, level, category, function and message, matches the
message against the gst signatures and applies the matched row's plan: the GST effect kinds
(connect, connect failed, the pending frame failed or closed, a frame started) are defined
here next to the three stateful handlers (a frame sent, a reply finished), which follow the
per-frame sequence (sent, resource id, reply). At the end it judges the log into a
`GstLogSummary` with the vsockenc findings (connect failed, no reply, desync, host error,
peer closed …). The element generations (`_ERAS`) and vsockenc failure ids live here.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from helixdiag.findings import Finding
from helixdiag.logscan.scanner import (
    _SAMPLES,
    Effect,
    _bounded_add,
    _int,
    _Scanner,
    _trim,
)
from helixdiag.logscan.summary import GstLogSummary
from helixdiag.protocol import MsgType

if TYPE_CHECKING:
    from helixdiag.logscan.dispatch import Rules
    from helixdiag.logscan.signatures import Signature

CONNECT_FAILED = "vsockenc-connect-failed"
NO_REPLY = "vsockenc-no-reply"
DESYNC = "vsockenc-desync"
HOST_ERROR = "vsockenc-host-error"
PEER_CLOSED = "vsockenc-peer-closed"

# vsockenc generations, dated by the strings each one prints (the `era` column).
_ERAS = {
    "head": "HEAD (65042b748 or later: pipelined, one request in flight)",
    "sync": "9ea0179fb–0908db89d (synchronous request/reply)",
    "pre-pipelining": "9aa275186–0908db89d (TCP, before pipelining)",
    "recv-thread": "b608802f0–9aa275186 (receive thread)",
    "p0": "8eaee4cf9 (P0 'simple' protocol)",
    "old-connect": "8eaee4cf9–b608802f0",
    "gem-handle": "65042b748 or earlier (GEM handle used as resource id)",
}
_NOT_PIPELINED = {"sync", "pre-pipelining", "recv-thread", "p0", "old-connect"}


def _msg_type_name(text: str | None, base: int = 10) -> str:
    """The protocol's name for a logged message type number, or "?"."""
    try:
        return MsgType(int(text or "", base)).name
    except ValueError:
        return "?"


# ════════════════════════════════════════════════════════════════════ vsockenc (gst)


_GST_HEADER = re.compile(
    r"(?P<ts>\d{1,6}:\d\d:\d\d\.\d{1,12})\s+(?P<pid>\d{1,10})\s+(?P<thread>0x[0-9a-fA-F]{1,16}|\(nil\))"
    r"\s+(?P<level>[A-Z]{1,8})\s+(?P<cat>\S{1,64})\s+(?P<file>[^:\s]{1,200}):(?P<lineno>\d{1,9}):"
    r"(?P<func>[^:\s]{0,200}):(?:<(?P<obj>[^>]{0,200})>)?\s?(?P<msg>.*)",
    re.ASCII,
)
_GST_SEARCH = _GST_HEADER.search


def _ts_seconds(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        h, m, s = ts.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    except ValueError:
        return None


def _magic_hint(magic: str) -> str:
    """Read a logged little-endian u32 "magic" as the 4 bytes that arrived."""
    value = _int_hex(magic)
    if value is None:
        return magic
    raw = (value & 0xFFFFFFFF).to_bytes(4, "little")
    hexbytes = " ".join(f"{b:02x}" for b in raw)
    if raw in (b"\x00\x00\x00\x01",) or raw[:3] == b"\x00\x00\x01":
        what = "an H.264 start code"
    elif raw == b"HXFR":
        what = "HXFR"
    elif raw == b"RFB ":
        what = "'RFB ': a VNC server (port 5900?)"
    elif all(32 <= b < 127 for b in raw):
        what = f"ASCII {raw.decode('ascii')!r}"
    else:
        what = ""
    return f"{magic} (bytes {hexbytes}{': ' + what if what else ''})"


def _int_hex(text: str) -> int | None:
    try:
        return int(text, 16)
    except ValueError:
        return None


# ── the GST effect kinds (constructors for the table; implementations below the class) ──


def connect(transport: str) -> Effect:
    """A connection was made ("tcp", "unix", "vsock" or "unknown"): target, counters; any
    frame in flight belonged to the old connection."""
    return Effect("connect", value=transport, label=f"connected ({transport})")


def connect_failed(transport: str, error: str | None = None) -> Effect:
    """A connect attempt failed: count it, keep its error (the `error` group, or `error` as a
    format string over the groups) and the target it names."""
    return Effect("connect_failed", value=(transport, error), label=f"connect failed ({transport})")


def closed(resolve: bool) -> Effect:
    """The host closed the connection: keep the error; with `resolve`, the pending frame (if
    any) failed."""
    return Effect("closed", value=resolve, label="connection closed" + (
        ": the pending frame failed" if resolve else ""))


def pending_mark(field: str, label: str) -> Effect:
    """While a frame waits for its reply, remember the first such line in `field` (the next
    frame started, or the drain at stop): the evidence that the reply is overdue."""
    return Effect("pending_mark", field, label=label)


FRAME_FAILED = Effect("frame_failed", label="the pending frame failed")  # its reply is unusable
FRAME_STARTED = pending_mark("pending_next", "next frame started: a reply still pending is overdue")


class _GstScanner(_Scanner):
    kind = "gst"

    def __init__(self, rules: Rules) -> None:
        super().__init__(rules)
        self.d = rules.dispatch
        self.s = GstLogSummary()
        self.gst_lines = self.vsockenc_lines = 0
        self.first_ts: str | None = None
        self.last_ts: str | None = None
        self.cur_ts: str | None = None
        self.eras: dict[str, int] = {}
        self.pending: dict[str, Any] | None = None
        self.pending_next: dict[str, Any] | None = None  # next frame started, reply not read
        self.pending_drain: dict[str, Any] | None = None
        self.pending_text = ""
        self.overlapping = 0  # "Sent frame" while the previous one had no reply logged
        # the effects' state (the scanner itself); finish() copies the summary's share
        self.shm_frames = self.dmabuf_frames = self.resource_id_failures = 0
        self.pixel_bytes: int | None = None
        self.video_mode: str | None = None
        self.pipeline: str | None = None
        self.magics: dict[str, int] = {}
        self.unexpected: dict[str, int] = {}
        self.short_reads = 0
        self.orphans = 0  # replies that matched no pending request (receive-thread element)
        self.host_errors: dict[str, int] = {}
        self.host_error_text: dict[str, str] = {}
        self.connect_errors: dict[str, int] = {}
        self.close_errors: dict[str, int] = {}

    def feed(self, no: int, line: str) -> int:
        self.lines += 1
        try:
            line = self._clean(line)
            h = _GST_SEARCH(line) if ":" in line else None
            if h is not None:
                ts, cat, func, msg = h.group("ts", "cat", "func", "msg")
                self.gst_lines += 1
                if self.first_ts is None:
                    self.first_ts = ts
                self.last_ts = self.cur_ts = ts
                if cat != "vsockenc":
                    return 0
                self.vsockenc_lines += 1
                found = self.d.match(msg.lstrip(), func, False)
                if found is not None:
                    self._apply(no, line, found[0], found[1])
                return 2
            self.cur_ts = None
            found = self.d.match(line.strip())
            if found is None:
                return 0
            sig, m = found
            self._apply(no, line, sig, m)
            return 1 if sig.detect else 0
        except Exception:  # noqa: BLE001 - one odd line must not end the scan
            self.internal_errors += 1
            return 0

    # ---------------------------------------------------------------- frame bookkeeping
    def _resolve(self, ok: bool) -> dict[str, Any] | None:
        done = self.pending
        self.pending = self.pending_next = self.pending_drain = None
        if ok:
            self.s.frames_finished += 1
        else:
            self.s.frames_failed += 1
        return done

    def _see_era(self, era: str, no: int, line: str, m: re.Match[str]) -> None:
        """The `era` column: this line dates the element (the first line of each era is kept)."""
        if era not in self.eras:
            self.eras[era] = no

    # ---------------------------------------------------------------- effect kinds
    def _fx_connect(self, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
        s, transport, gd = self.s, e.value, m.groupdict()
        host, port, path = gd.get("host", gd.get("cid")), _int(gd.get("port")), gd.get("path")
        s.connects += 1
        s.transport = transport
        s.last_connect = {"transport": transport, "host": host, "port": port, "path": path,
                          "ts": self.cur_ts, "line_no": no}
        if transport == "tcp":
            s.tcp_host, s.tcp_port = host, port
            target = f"tcp {host}:{port}"
        elif transport == "unix":
            s.socket_path = path
            target = f"unix {path}"
        else:
            target = transport if host is None else f"{transport} {host}:{port}"
        if target not in s.connect_targets and len(s.connect_targets) < _SAMPLES:
            s.connect_targets.append(target)
        self.pending = self.pending_next = self.pending_drain = None  # a new connection

    def _fx_connect_failed(self, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
        s, (transport, error), gd = self.s, e.value, m.groupdict()
        s.connect_failures += 1
        err = error.format(**gd) if error else gd.get("error") or ""
        if err:
            _bounded_add(self.connect_errors, err)
        if transport == "tcp":
            if gd.get("port"):
                s.tcp_host, s.tcp_port, s.transport = gd["host"], _int(gd["port"]), "tcp"
            elif "host" in gd:  # an invalid tcp-host: no port was tried
                s.tcp_host, s.transport = gd["host"], "tcp"
        elif transport == "unix" and gd.get("path"):
            s.socket_path, s.transport = gd["path"], "unix"
        elif transport == "vsock":
            s.transport = "vsock"

    def _fx_frame_failed(self, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
        self._resolve(ok=False)

    def _fx_closed(self, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
        if e.value and self.pending is not None:
            self._resolve(ok=False)
        err = m.groupdict().get("error") or ""
        if err:
            _bounded_add(self.close_errors, err)

    def _fx_pending_mark(self, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
        if self.pending is not None and getattr(self, e.field) is None:  # type: ignore[arg-type]
            setattr(self, e.field, {"line_no": no, "ts": self.cur_ts,  # type: ignore[arg-type]
                                    "line": _trim(line)})

    EFFECTS = {**_Scanner.EFFECTS, "connect": _fx_connect, "connect_failed": _fx_connect_failed,
               "frame_failed": _fx_frame_failed, "closed": _fx_closed,
               "pending_mark": _fx_pending_mark}

    # ---------------------------------------------------------------- stateful handlers
    def _on_sent_frame(self, sig: Signature, no: int, line: str, m: re.Match[str]) -> None:
        """a request went out: it becomes the pending frame (counter restarts, overlap with an
        unanswered one, size, pixel format and bandwidth are checked)"""
        s = self.s
        frame = _int(m["frame"])
        if s.last_sent is not None and frame is not None and s.last_sent["frame"] is not None \
                and frame <= s.last_sent["frame"]:
            s.frame_restarts += 1
        if self.pending is not None:
            self.overlapping += 1
        s.frames_sent += 1
        width, height = _int(m["width"]), _int(m["height"])
        info = {"frame": frame, "ts": self.cur_ts, "line_no": no,
                "resource_id": _int(m["resource_id"]), "width": width, "height": height,
                "keyframe": m["keyframe"] == "1", "pixel_bytes": self.pixel_bytes}
        s.last_sent = info
        s.frame_size = f"{width}x{height}"
        self.pending, self.pending_next, self.pending_drain = info, None, None
        self.pending_text = _trim(line)
        self._check_bandwidth(no, line, width, height)

    def _check_bandwidth(self, no: int, line: str, width: int | None, height: int | None) -> None:
        nbytes = self.pixel_bytes
        if not (nbytes and width and height):
            return
        bpp = nbytes / (width * height)
        self.s.pixel_format = "NV12" if 1.45 <= bpp <= 1.6 else "BGRx/BGRA" if 3.9 <= bpp <= 4.2 \
            else f"{bpp:.2f} bytes/pixel"
        if 3.9 <= bpp <= 4.2 and nbytes > 1_000_000:
            acc = self._hit("gst-bgra-bandwidth", no, line, self.by_name["gst.sent-pixels"], None)
            acc.extra = {"pixel_bytes": nbytes, "frame_size": f"{width}x{height}",
                         "nv12_bytes": width * height * 3 // 2}

    def _finished(self, no: int, m: re.Match[str]) -> None:
        done = self._resolve(ok=True)
        nal_count = _int(m["nal_count"])
        keyframe = m["keyframe"] == "1"
        if keyframe:
            self.s.keyframes_finished += 1
        self.s.last_finished = {
            "frame": done["frame"] if done else None, "ts": self.cur_ts, "line_no": no,
            "pts": _int(m["pts"]), "keyframe": keyframe, "nal_count": nal_count,
            "total_size": _int(m["total_size"]),
        }

    def _on_finished(self, sig: Signature, no: int, line: str, m: re.Match[str]) -> None:
        """a reply was consumed: the pending frame finished (keyframe, NAL count, size); more
        than one NAL entry proves stream-nal-count (the largest count is kept)"""
        self._finished(no, m)
        if (_int(m["nal_count"]) or 0) > 1:
            acc = self._hit("stream-nal-count", no, line, sig, m)
            acc.extra["max_nal_count"] = max(acc.extra.get("max_nal_count", 0), _int(m["nal_count"]) or 0)

    def _on_old_finished(self, sig: Signature, no: int, line: str, m: re.Match[str]) -> None:
        """a reply was consumed (older element): the pending frame finished; more than one
        NAL entry proves stream-nal-count"""
        self._finished(no, m)
        if (_int(m["nal_count"]) or 0) > 1:
            self._hit("stream-nal-count", no, line, sig, m)

    # ---------------------------------------------------------------- the end
    def finish(self) -> GstLogSummary:
        s = self.s
        self._fill(s)
        s.gst_lines, s.vsockenc_lines = self.gst_lines, self.vsockenc_lines
        s.first_ts, s.last_ts = self.first_ts, self.last_ts
        s.element_eras = sorted(self.eras, key=self.eras.__getitem__)
        s.element = self._element()
        s.host_errors = dict(self.host_errors)
        s.bad_magics = dict(self.magics)
        s.shm_frames, s.dmabuf_frames = self.shm_frames, self.dmabuf_frames
        s.resource_id_failures, s.pixel_bytes = self.resource_id_failures, self.pixel_bytes
        s.video_mode, s.pipeline = self.video_mode, self.pipeline
        findings: list[Finding] = []
        if self.pending is not None:
            s.pending_at_end = self.pending["frame"]
            t0, t1 = _ts_seconds(self.pending["ts"]), _ts_seconds(self.last_ts)
            if t0 is not None and t1 is not None and t1 >= t0:
                s.idle_s_at_end = round(t1 - t0, 6)
            self._judge_pending(findings)
        for fid in (CONNECT_FAILED, PEER_CLOSED, DESYNC, HOST_ERROR, "stream-connect-failed",
                    "stream-bad-magic", "stream-protocol-error", "gst-bgra-bandwidth",
                    "stream-nal-count"):
            if fid in self.accs:
                findings.append(self._gst_finding(fid))
        s.findings = findings
        broken = any(f.severity == "fail" for f in findings) or self.overlapping
        s.sequence = "none" if s.frames_sent == 0 else "broken" if broken else "healthy"
        self._input_notes()
        s.notes = list(self.notes.values())
        return s

    def _element(self) -> str | None:
        if not self.eras:
            return None
        keys = set(self.eras)
        # Drop the wide ranges that a narrower era seen in the same log already explains.
        if len(keys) > 1:
            keys.discard("gem-handle")
        if keys & {"sync", "recv-thread"}:
            keys.discard("pre-pipelining")
        if keys & {"recv-thread", "p0"}:
            keys.discard("old-connect")
        if len(keys) == 1:
            return _ERAS[keys.pop()]
        return "mixed: " + "; ".join(_ERAS[k] for k in sorted(keys, key=self.eras.__getitem__))

    def _judge_pending(self, findings: list[Finding]) -> None:
        s, p = self.s, self.pending
        assert p is not None
        eras = set(self.eras)
        pipelined = "head" in eras or not (eras & _NOT_PIPELINED)
        synchronous = not pipelined and "recv-thread" not in eras and "p0" not in eras
        evidence = {"frame": p["frame"], "sent_ts": p["ts"], "sent_line_no": p["line_no"],
                    "last_ts": self.last_ts, "idle_s_at_end": s.idle_s_at_end,
                    "frames_sent": s.frames_sent, "frames_finished": s.frames_finished,
                    "line_no": p["line_no"], "line": None}
        idle = f", {s.idle_s_at_end:g} s before the log ends" if s.idle_s_at_end else ""
        if self.pending_drain is not None:
            evidence.update(line_no=self.pending_drain["line_no"], line=self.pending_drain["line"])
            message = (f"frame {p['frame']} was sent at {p['ts'] or '?'} and never answered; the "
                       f"pipeline is stopping and the drain blocks on its reply{idle}")
        elif self.pending_next is not None:
            evidence.update(line_no=self.pending_next["line_no"], line=self.pending_next["line"],
                            next_frame_ts=self.pending_next["ts"])
            message = (f"frame {p['frame']} was sent at {p['ts'] or '?'} and never answered; the "
                       f"next frame started at {self.pending_next['ts'] or '?'} and is blocked "
                       f"reading that reply (no timeout){idle}")
        elif synchronous and s.frames_finished >= 1:
            evidence["line"] = self.pending_text
            message = (f"frame {p['frame']} was sent at {p['ts'] or '?'} and no reply follows; "
                       f"this element version blocks right after sending{idle} "
                       f"({s.frames_finished} earlier frames were answered)")
        else:
            self._note("pending-at-end", f"the log ends with frame {p['frame']} sent and its reply "
                       "not read yet: normal for the pipelined element, which reads it when the "
                       "next frame arrives (a static screen sends none). If the picture is frozen "
                       "while the screen changes, this is vsockenc-no-reply.", p["line_no"],
                       None, related=NO_REPLY)
            return
        findings.append(Finding(NO_REPLY, message, {k: v for k, v in evidence.items()
                                                    if v is not None}, 1))

    def _gst_finding(self, fid: str) -> Finding:
        acc = self.accs[fid]
        s = self.s
        first = self.by_name[acc.first_sig]
        times = f" ({acc.count} lines)" if acc.count > 1 else ""
        if fid == CONNECT_FAILED:
            errs = ", ".join(self.connect_errors) or first.meaning
            not_connected = acc.sigs.get("gst.not-connected", 0)
            attempts = acc.count - not_connected
            times = f" ({attempts} attempts)" if attempts > 1 else ""
            if s.transport == "tcp" and s.tcp_port is not None:
                target = f"{s.tcp_host}:{s.tcp_port}"
            elif s.transport == "unix":
                target = f"unix:{s.socket_path}"
            elif s.transport == "vsock":
                target = "vsock (set tcp-host: vsock never worked on macOS)"
            else:
                target = "the host encoder"
            msg = f"vsockenc could not connect to {target}: {errs}{times}"
            if not_connected:
                msg += f"; {not_connected} frame(s) then failed with 'Not connected to host encoder'"
            return self._finding(fid, msg, transport=s.transport, tcp_host=s.tcp_host,
                                 tcp_port=s.tcp_port, errors=dict(self.connect_errors))
        if fid == PEER_CLOSED:
            seen = ", ".join(self.by_name[n].regex.pattern.split(":")[0].rstrip("$") +
                             (f" ×{c}" if c > 1 else "") for n, c in acc.sigs.items())
            msg = f"the host closed vsockenc's connection: {seen}"
            if self.close_errors:
                msg += f" ({', '.join(self.close_errors)})"
            return self._finding(fid, msg + "; the pipeline errors and the stream restarts",
                                 errors=dict(self.close_errors))
        if fid == DESYNC:
            parts = []
            if self.magics:
                parts.append("bad magic " + ", ".join(_magic_hint(k) for k in list(self.magics)[:3]))
            if self.unexpected:
                parts.append("unexpected message type " + ", ".join(
                    f"{t} ({_msg_type_name(t)})" for t in self.unexpected))
            if self.short_reads:
                parts.append(f"{self.short_reads} short read(s)")
            if self.orphans:
                parts.append(f"{self.orphans} reply(ies) for no pending frame")
            msg = f"vsockenc lost alignment with the host: {'; '.join(parts) or first.meaning}" \
                  f"{times}; each drops a frame and nothing resynchronises"
            return self._finding(fid, msg, magics=dict(self.magics),
                                 unexpected_types=dict(self.unexpected))
        if fid == HOST_ERROR:
            codes = ", ".join(f"{c} ({self.host_error_text.get(c, '')!s}) ×{n}"
                              for c, n in self.host_errors.items())
            msg = f"the host answered {acc.count} frame(s) with ERROR: {codes}"
            return self._finding(fid, msg, codes=dict(self.host_errors))
        if fid == "gst-bgra-bandwidth":
            ex = acc.extra
            return self._finding(fid, f"each request carries {ex['pixel_bytes']} bytes of pixels "
                                 f"({ex['frame_size']} at 4 bytes/pixel, BGRx/BGRA); NV12 would "
                                 f"be {ex['nv12_bytes']}")
        if fid == "stream-nal-count":
            return self._finding(fid, f"{acc.count} replies carried more than one NAL entry")
        if fid == "stream-bad-magic":
            return self._finding(fid, "the scanout reader got a reply that is not HXFR: bad magic "
                                 f"{_magic_hint(acc.fields.get('magic', '?'))}{times}")
        if fid == "stream-protocol-error":
            t = acc.fields.get("msg_type")
            return self._finding(fid, "the scanout reader got a message of the wrong type: "
                                 f"{t} ({_msg_type_name(t, 16)}){times}")
        if fid == "stream-connect-failed":
            return self._finding(fid, f"the scanout client could not connect to QEMU at "
                                 f"{acc.fields.get('addr')}: {acc.fields.get('error')}{times}")
        return self._finding(fid, f"{first.meaning}{times}")

    def _input_notes(self) -> None:
        s = self.s
        if s.shm_frames:
            self._note("shm-input", f"{s.shm_frames} frames came from shared-memory buffers: "
                       "resource_id=0, the pixels travel over TCP (normal on UTM)",
                       related="pipewire-shm-buffers")
            self.notes["shm-input"].count = s.shm_frames
        if s.dmabuf_frames:
            self._note("dmabuf-input", f"{s.dmabuf_frames} frames had a zero-copy virtio-gpu "
                       "resource id (not seen on UTM so far)")
            self.notes["dmabuf-input"].count = s.dmabuf_frames
        if "recv-thread" in self.eras and s.frames_sent and not s.frames_finished:
            self._note("recv-thread", "receive-thread element (b608802f0–9aa275186) and no "
                       "'Finished frame' line: replies pushed from that thread never reached "
                       "appsink; update the element")
        if self.overlapping:
            self._note("overlapping", f"{self.overlapping} frames were sent while the previous "
                       "one had no reply logged (log level too low, or an old element)")
