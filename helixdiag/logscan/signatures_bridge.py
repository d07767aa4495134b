"""The signature table's desktop-bridge rows (log kind `bridge`): part of `SIGNATURES`.

Each row's pattern matches a line's *content* (`slog.parse`): the message, then its
attributes as ` key=value` in the order the bridge logs them (quoted values keep their
quotes). Facts the rows read by name come from the attributes (`attr`), whatever their order.
"""

from __future__ import annotations

from typing import Any

from helixdiag.logscan.bridge import _BridgeScanner
from helixdiag.logscan.scanner import count, put
from helixdiag.logscan.signature import _HEX, _IP, _U, Signature, _sig
from helixdiag.logscan.slog import attr


def _b(name: str, pattern: str, meaning: str, failure_id: str | None = None, **kw: Any) -> Signature:
    return _sig("bridge", name, pattern, meaning, failure_id, **kw)


_ERRV = r'(?: err="?(?P<error>[^"]{0,2000}))?'  # the err attribute's text, when there is one
_START = 'failed to start streamer err="?start scanout source: '
_READ = 'QEMU frame read error err="?'
_CONNECT = rf"connect to QEMU (?P<addr>{_IP}:(?P<port>{_U})): "
START_FAILED = count("start_failures")

_BRIDGE: tuple[Signature, ...] = (
    # ── the video mode and the scanout id ──
    _b("scanout-mode", r"starting scanout mode \(QEMU H\.264 via TCP\)",
       "a viewer arrived and the bridge starts scanout mode: video comes from the host's "
       "scanout, vsockenc is not used", level="INFO",
       effect=put("video_mode", value="scanout")),
    _b("using-vsockenc", r"using vsockenc \((?P<why>[^)]{1,80})\)",
       "the bridge encodes with vsockenc (request mode), not the scanout", level="INFO",
       effect=put("video_mode", value="vsockenc")),
    _b("resolution", r"scanout source resolution", "the scanout source's size", level="INFO"),
    _b("id-from-env", r"Using scanout ID from env", "the scanout id comes from HELIX_SCANOUT_ID",
       level="INFO",
       effect=(attr("scanout_id", "scanout_id", conv="int"), put("scanout_id_source", value="env"))),
    _b("id-from-file", r"Using scanout ID from file",
       "the scanout id comes from the launcher's helix-scanout-id file (the expected source)",
       level="INFO",
       effect=(attr("scanout_id", "scanout_id", conv="int"), put("scanout_id_source", value="file"))),
    _b("own-lease", r"DRM lease acquired for scanout ID",
       "no id from the environment or the launcher's file: the bridge leased a connector of its "
       "own, which nobody draws on", "scanout-not-rendered", level="INFO",
       effect=(attr("scanout_id", "scanout_id", conv="int"),
               put("scanout_id_source", value="own-lease"))),
    # ── the subscription and its frames ──
    _b("subscribed", r"subscribed to QEMU scanout", "SUBSCRIBE answered: the host will push "
       "the scanout's frames", level="INFO",
       handler=_BridgeScanner._on_subscribed),
    _b("subscribed-shared", r"subscribed to shared scanout source",
       "a viewer joined the shared scanout source", level="INFO"),
    _b("source-created", r"scanout source created \(first client\)",
       "the first viewer created the scanout source", level="INFO"),
    _b("source-reused", r"reusing existing scanout source \(shared\)",
       "a viewer reuses the running scanout source", level="INFO"),
    _b("initial-config", r"sent initial CONFIG_REQ", "the viewer's bitrate sent to the host",
       level="INFO"),
    _b("initial-config-failed", r"failed to send initial CONFIG_REQ",
       "the bitrate could not be sent", level="WARN", note=True),
    _b("config-sent", r"sent CONFIG_REQ to QEMU", "bitrate change sent", level="INFO"),
    _b("config-failed", r"failed to send CONFIG_REQ", "bitrate change could not be sent",
       level="WARN", note=True),
    _b("stats", r"scanout stream stats", "frame count (at frame 1 and every 300): frames=1 "
       "proves the first pushed frame arrived", "scanout-mid-gop",
       when="the first stats of a subscription say frames=1 keyframe=false", level="INFO",
       handler=_BridgeScanner._on_stats),
    _b("frame-dropped", r"scanout frame dropped \(channel full\)",
       "encoded frames dropped (sampled: most drops are not logged); corruption until the next "
       "keyframe", level="WARN",
       effect=count("frames_dropped")),
    # ── the reader's end ──
    _b("read-bad-magic", rf"{_READ}bad magic: (?P<magic>{_HEX})",
       "the scanout reader got a reply that is not HXFR and stopped", "stream-bad-magic",
       level="ERROR",
       handler=_BridgeScanner._on_read_error),
    _b("read-unexpected-type", rf"{_READ}unexpected msg_type: (?P<msg_type>{_HEX})",
       "the scanout reader got a message of the wrong type and stopped", "stream-protocol-error",
       level="ERROR",
       handler=_BridgeScanner._on_read_error),
    _b("read-error", rf"QEMU frame read error{_ERRV}",
       "the scanout reader stopped and never reconnects (read header: EOF: the host closed it)",
       "scanout-connection-lost",
       when="no new subscription follows (EOF ≈60 s or ≈600 s after subscribing: scanout-idle-drop)",
       level="ERROR",
       handler=_BridgeScanner._on_read_error),
    # ── starting the stream failed ──
    _b("start-wrong-port", rf"{_START}{_CONNECT}(?P<error>[^\"]{{0,500}}refused[^\"]{{0,200}})",
       "the bridge's HELIX_FRAME_EXPORT_PORT is not where the host listens (connection refused)",
       "bridge-wrong-port", level="ERROR",
       effect=(START_FAILED, put("qemu_port", "port", conv="int"))),
    _b("start-connect-failed", rf"{_START}{_CONNECT}(?P<error>[^\"]{{0,1000}})",
       "the bridge could not connect to the host (a timeout: the route, not the port)",
       "stream-connect-failed", level="ERROR",
       effect=(START_FAILED, put("qemu_port", "port", conv="int"))),
    _b("start-subscribe-race", rf"{_START}subscribe response: unexpected msg_type: 0x2\b",
       "a pushed frame came before SUBSCRIBE_RESP (the host marks the client subscribed before "
       "it answers); harmless for a client that skips it, a failed start for this bridge",
       level="ERROR", note=True,
       effect=START_FAILED),
    _b("start-subscribe-eof", rf"{_START}subscribe response: read header: EOF",
       "the host closed the connection right after it was accepted (no client slot left?)",
       level="ERROR", note=True, related="scanout-slots-exhausted",
       effect=START_FAILED),
    _b("start-subscribe-timeout", rf"{_START}subscribe response: (?P<error>[^\"]{{0,300}}i/o timeout)",
       "no SUBSCRIBE_RESP within 5 s: a host without scanout support (H2) or a stalled one",
       level="ERROR", note=True, related="stream-no-reply",
       effect=START_FAILED),
    _b("start-subscribe-rejected", rf"{_START}subscribe rejected for scanout (?P<scanout>{_U})",
       "the host refused the subscription", level="ERROR", note=True,
       effect=START_FAILED),
    _b("start-lease-failed", rf"{_START}request DRM lease: (?P<error>[^\"]{{0,1000}})",
       "the bridge's own-lease fallback failed (no id from env or file)", level="ERROR",
       note=True, related="drm-lease-failed",
       effect=START_FAILED),
    _b("start-failed", rf"failed to start streamer{_ERRV}", "the stream could not start; the "
       "error also goes to the browser", level="ERROR", note=True,
       effect=START_FAILED),
    _b("channel-closed", r"shared video source channel closed", "a viewer's loop ended",
       level="INFO"),
    _b("pipeline-error", r"pipeline error received", "a viewer got the stream's error",
       level="ERROR", note=True),
    # ── the input side (its connector must be Virtual-(id+1)) ──
    _b("input-session", r"scanout mode: starting RemoteDesktop\+ScreenCast session",
       "input side starting", level="INFO"),
    _b("input-ready", r"scanout mode: input ready", "input side ready", level="INFO"),
    _b("video-from-qemu", r"scanout mode: video from QEMU TCP", "video comes from the host",
       level="INFO"),
    _b("linked-screencast", r"scanout mode: linked ScreenCast created",
       "input coordinates from a linked ScreenCast", level="INFO"),
    _b("monitor-connector", r"detected active monitor connector",
       "the desktop's monitor: must be Virtual-(id+1) of the subscribed scanout", level="INFO",
       effect=attr("monitor_connector", "connector")),
    _b("no-wayland", r"No Wayland socket found after (?P<seconds>\d{1,5}) seconds",
       "GNOME never started (no lease from helix-drm-manager?)", level="ERROR", note=True,
       related="drm-manager-not-running"),
    # ── the shared video source (zerolog JSON, older builds printf) ──
    _b("sv.pipeline", r"\[SHARED_VIDEO\] Pipeline: (?P<pipeline>.*)",
       "the full GStreamer pipeline string",
       effect=put("pipeline", "pipeline", limit=2000)),
    _b("sv.created", r"\[SHARED_VIDEO\] Created new external source", "scanout source registered"),
    _b("sv.first-client", r"\[SHARED_VIDEO\] Client subscribed \(first client, starting pipeline\)",
       "the first viewer starts the source"),
    _b("sv.starting", r"\[SHARED_VIDEO\] Starting external source", "source starting"),
    _b("sv.gop", r"\[SHARED_VIDEO\] New GOP started", "a keyframe arrived (first 3, then every "
       "100th); none yet: the viewer waits for one",
       effect=count("gops")),
    _b("sv.broadcast", r"\[SHARED_VIDEO\] Broadcast frame", "frames reach the viewers (frame 1, "
       "every 300th)"),
    _b("sv.channel-closed", r"\[SHARED_VIDEO\] External source channel closed",
       "the reader ended and the viewers were not told: frozen picture", note=True,
       related="scanout-connection-lost"),
    _b("sv.pipeline-error", r"\[SHARED_VIDEO\] Pipeline error", "the source's error goes to "
       "every viewer", note=True),
    _b("sv.error-sent", r"\[SHARED_VIDEO\] Error sent to client", "a viewer got the error"),
    _b("sv.slow-client", r"\[SHARED_VIDEO\] Disconnecting slow client",
       "a viewer that does not keep up was disconnected", note=True),
    _b("sv.grace-start", r"\[SHARED_VIDEO\] Scheduled stop \(grace period started\)",
       "the last viewer left; the source stops after the grace period"),
    _b("sv.grace-expired", r"\[SHARED_VIDEO\] Grace period expired, stopping pipeline",
       "the source stopped (no viewer)"),
    _b("sv.stopping", r"\[SHARED_VIDEO\] Stopping source", "source stopping"),
    _b("sv.evicted", r"\[SHARED_VIDEO\] Evicted dead source", "a dead source was removed"),
    _b("sv.reactivated", r"\[SHARED_VIDEO\] Reactivated pending-stop source",
       "a viewer came back within the grace period"),
    _b("stream.native-source", r"\[STREAM\] macOS ARM virtio-gpu detected, using native "
       r"pipewiresrc with NV12", "source choice on macOS ARM (vsockenc mode)"),
    # ── a line of any shape ──
    _b("subscribe-race", r"subscribe response: unexpected msg_type: 0x2\b",
       "a pushed frame came before SUBSCRIBE_RESP: harmless for a client that skips it",
       anywhere=True, needle="subscribe response: unexpected msg_type: 0x2", note=True),
    _b("qemu-error", r"QEMU error: (?P<text>.*)", "the host sent ERROR on the scanout path",
       anywhere=True, needle="QEMU error: ", note=True),
    _b("err.subscribe-response", r"subscribe response: (?P<error>.*)",
       "no valid SUBSCRIBE_RESP (the bridge waits 5 s)", anywhere=True,
       needle="subscribe response: ", note=True, detect=False, related="stream-no-reply"),
    # ── the scanout client's error texts, in a line of any other shape ──
    _b("err.connect", rf"{_CONNECT}(?P<error>.*)", "the scanout client could not connect to the host",
       anywhere=True, needle="connect to QEMU ", note=True, detect=False,
       related="stream-connect-failed"),
    _b("err.subscribe-write", rf"subscribe to scanout (?P<scanout>{_U}): (?P<error>.*)",
       "SUBSCRIBE could not be sent", anywhere=True, needle="subscribe to scanout ", note=True,
       detect=False, related="stream-closed"),
    _b("err.subscribe-rejected", rf"subscribe rejected for scanout (?P<scanout>{_U})",
       "the host rejected the subscription", anywhere=True, needle="subscribe rejected for scanout",
       note=True, detect=False),
    _b("err.lease", r"request DRM lease: (?P<error>.*)", "the own-lease fallback failed",
       anywhere=True, needle="request DRM lease: ", note=True, detect=False,
       related="drm-lease-failed"),
    _b("err.bad-magic", rf"bad magic: (?P<magic>{_HEX})", "a reply that is not HXFR",
       "stream-bad-magic", anywhere=True, needle="bad magic: 0x", detect=False),
    _b("err.unexpected-type", rf"unexpected msg_type: (?P<msg_type>{_HEX})",
       "a message of the wrong type", "stream-protocol-error", anywhere=True,
       needle="unexpected msg_type: ", detect=False),
    _b("err.short-read", r"read nal_(?:size|data|count): (?P<error>.*)", "a short read of a frame",
       anywhere=True, needle="read nal_", note=True, detect=False, related="scanout-connection-lost"),
    _b("err.enable-refused", rf"QEMU refused to enable scanout (?P<scanout>{_U})",
       "the host refused to enable a scanout (helix-drm-manager's error)", anywhere=True,
       needle="QEMU refused to enable scanout", note=True, detect=False, related="drm-lease-failed"),
)
