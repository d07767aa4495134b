"""The failure ids: the ONE place they are declared.

Every finding the tool prints carries one of these ids; `helixdiag explain ID` shows its
page (`docs/failures/<id>.md`, installed as `helixdiag/_pages/failures/<id>.md`).
Ids are stable: new ones may be added, none is ever renamed.
"""

from __future__ import annotations

import difflib
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from helixdiag.compat import StrEnum
from helixdiag.errors import UsageError
from helixdiag.layers import LAYER_NAMES
from helixdiag.pixelcost import BGRX_1080P, frame_cost, grouped
from helixdiag.protocol import PixelFormat


class Severity(StrEnum):
    FAIL = "fail"
    WARN = "warn"


@dataclass(frozen=True)
class Failure:
    id: str  # stable kebab-case id
    layer: str  # one of helixdiag.layers.LAYER_NAMES
    severity: Severity
    title: str  # one line: what the user sees
    explanation: str  # 1–3 sentences: why it happens (the mechanism)
    remedy: str  # what to do, concrete commands where possible
    # Failures this one explains whatever the layer order says (a stale socket file is why
    # QEMU's bind failed, not the other way round); the diagnosis reads it (graph.py).
    explains: frozenset[str] = frozenset()
    # A fact about the component itself (how it is installed, configured or built): nothing
    # failing elsewhere on the path explains it, so the layer order never makes it a symptom.
    intrinsic: bool = False

    @property
    def page(self) -> str:
        """Where the page lives in the source tree (for reports and links)."""
        return f"docs/failures/{self.id}.md"


class UnknownFailureId(UsageError):
    """`explain` (or any lookup) was given an id the catalog does not have."""

    def __init__(self, failure_id: str, suggestions: list[str]) -> None:
        if suggestions:
            options = ", ".join(suggestions[:-1]) + " or " if len(suggestions) > 1 else ""
            message = f"unknown failure id {failure_id!r}; did you mean {options}{suggestions[-1]}?"
        else:
            message = f"unknown failure id {failure_id!r}; `helixdiag explain --list` shows them all"
        super().__init__(message)
        self.failure_id = failure_id
        self.suggestions = suggestions


F, W = Severity.FAIL, Severity.WARN

_ENTRIES: tuple[Failure, ...] = (
    # ── pipewire ──────────────────────────────────────────────────────────────────────
    Failure(
        "pipewire-not-running", "pipewire", F,
        "No PipeWire daemon is reachable from this session",
        "PipeWire clients find the daemon through the `pipewire-0` socket in "
        "$XDG_RUNTIME_DIR (or PIPEWIRE_RUNTIME_DIR / PIPEWIRE_REMOTE). When the variable is "
        "unset or points elsewhere, or the socket is a stale one left by a killed daemon, "
        "every client fails at once with \"Host is down\" and pipewiresrc cannot open.",
        "Run the check as the desktop session's user with its XDG_RUNTIME_DIR (inside the "
        "desktop container), and confirm with `pw-cli info 0`. If the daemon is really down, "
        "start it again (pipewire, plus wireplumber with a D-Bus session bus).",
    ),
    Failure(
        "pipewire-no-source", "pipewire", F,
        "PipeWire runs, but the video source node is missing",
        "pipewiresrc links only to the node it is told to use (or, if none is named, the "
        "default Video/Source) and is never redirected to another one. With a wrong or "
        "missing node it waits 30 s and then fails with no ERROR line; note that "
        "`target-object=` takes a node name or serial, never the node id.",
        "List the nodes with `pw-dump` (or `pw-cli ls Node`) and look for a "
        "`media.class` of `Video/Source`. Pass the id with `path=<id>` or the name/serial "
        "with `target-object=`, and pass the portal fd (`fd=`) for ScreenCast nodes. If no "
        "ScreenCast node exists, restart the desktop session.",
    ),
    Failure(
        "pipewire-static-stall", "pipewire", F,
        "Frames stop after an initial burst (static screen / PipeWire stall)",
        "ScreenCast is damage-driven: on Mutter headless/virtio-gpu an idle desktop "
        "generates no damage, so after 2–8 frames nothing more arrives. `always-copy=true` "
        "on virtio-gpu stops production after the first render. pipewiresrc neither errors "
        "nor ends the stream, and the node stays `running`, so only counting frames shows it.",
        "Remove `always-copy=true` from pipewiresrc on virtio-gpu, and do not add videorate "
        "(`helixdiag lint \"<pipeline>\"`). For an idle desktop, Helix re-broadcasts the last "
        "H.264 frame from the Go layer (keepalive-time=500 does not help). Move a window to "
        "check that frames resume with damage.",
    ),
    Failure(
        "pipewire-shm-buffers", "pipewire", W,
        "ScreenCast delivers shared-memory buffers, not DMA-BUF: every frame is sent as pixels",
        "Headless Mutter on virtio-gpu (UTM) offers ScreenCast only SHM/MemFd buffers. "
        "vsockenc then finds no virtio-gpu resource id, so it sends resource_id=0 with the "
        "whole pixel payload. This is normal on UTM, and a warning only because it costs "
        "bandwidth.",
        "Nothing to repair on UTM: keep the pixel path with NV12 "
        "(`videoconvert ! video/x-raw,format=NV12` before the queue), or use scanout mode "
        "(Helix's default on virtio-gpu). Forcing `pipewirezerocopysrc buffer-type=dmabuf-passthrough` "
        "fails with \"no more input formats\".",
        intrinsic=True,
    ),
    # ── vsockenc ──────────────────────────────────────────────────────────────────────
    Failure(
        "vsockenc-missing", "vsockenc", F,
        "The vsockenc GStreamer element is not installed",
        "`gst-inspect-1.0 vsockenc` fails when the image lost its GStreamer plugins (seen "
        "with an image made by `docker export`/`import`), or on amd64, where the Dockerfile "
        "only creates an empty placeholder. The pipeline then stops with \"Internal data "
        "stream error … reason error (-5)\" and delivers 0 frames.",
        "Rebuild the image properly (`--platform linux/arm64`) and check it with "
        "`docker run --rm helix-ubuntu:<tag> gst-inspect-1.0 vsockenc`. The plugin is "
        "`libgstvsockenc.so` in the gstreamer-1.0 plugin directory.",
        intrinsic=True,
    ),
    Failure(
        "gst-pipeline-order", "vsockenc", F,
        "The pipeline's elements are in an order that stalls PipeWire "
        "(convert after the leaky queue, or videorate)",
        "With videoconvert/videoscale after `queue max-size-buffers=1 leaky=downstream`, "
        "PipeWire's buffers stay referenced across the blocking TCP round trip. PipeWire "
        "cannot recycle them and stops after about 2 frames. A `videorate … ! "
        "video/x-raw,framerate=30/1` conflicts with pipewiresrc's variable (0/1) frame rate "
        "and cuts the output to 1 frame.",
        "Convert right after the source and before the queue: `pipewiresrc … ! videoconvert "
        "! video/x-raw,format=NV12 ! queue max-size-buffers=1 leaky=downstream ! vsockenc …`. "
        "Remove any videorate or fixed framerate capsfilter. Check the pipeline with "
        "`helixdiag lint \"<pipeline>\"`.",
        intrinsic=True,
    ),
    Failure(
        "gst-profile-caps", "vsockenc", F,
        "An H.264 profile is pinned in the caps after vsockenc, so no output reaches appsink",
        "A caps filter such as `video/x-h264,profile=constrained-baseline` after h264parse "
        "cannot be met when the host's VideoToolbox produces another profile (Main on "
        "H0/H1 hosts). vsockenc keeps finishing frames, but appsink receives 0.",
        "Do not pin a profile: use `h264parse ! video/x-h264,stream-format=byte-stream` and end "
        "with `h264parse config-interval=-1 ! "
        "video/x-h264,stream-format=byte-stream,alignment=au`.",
        intrinsic=True,
    ),
    Failure(
        "gst-bgra-bandwidth", "vsockenc", W,
        "Raw BGRx/BGRA pixels over SLiRP TCP limit the frame rate",
        "Each frame's pixels cross SLiRP user-mode TCP, which costs about 67 ms per 3.1 MB. "
        f"Measured: BGRA 1080p ({grouped(BGRX_1080P.bytes_per_frame)} bytes/frame) gave 6.8–8.7 "
        f"FPS, NV12 1080p ({grouped(BGRX_1080P.nv12_bytes_per_frame)}) about 15 FPS, and NV12 "
        f"960×540 ({grouped(frame_cost(PixelFormat.NV12, 960, 540).bytes_per_frame)}) about 41 FPS. "
        "Above about 1 MB per frame, the transfer dominates.",
        f"Feed vsockenc NV12 ({BGRX_1080P.ratio_text} smaller): `videoconvert ! "
        "video/x-raw,format=NV12` before the queue. Optionally downscale first (`videoscale ! "
        "video/x-raw,width=960,height=540` before the convert). The real fix is scanout mode, "
        "which moves no pixels.",
        intrinsic=True,
    ),
    Failure(
        "vsockenc-connect-failed", "vsockenc", F,
        "vsockenc cannot connect to the host encoder",
        "vsockenc connects using socket-path if set, else tcp-host (which must be a numeric "
        "IPv4 address), else AF_VSOCK CID 2 port 5000, which never worked on macOS. If the "
        "connect fails, the element is \"Not connected to host encoder\" and every frame "
        "returns a flow error, which fails the pipeline.",
        "Set the transport explicitly: `vsockenc tcp-host=10.0.2.2 tcp-port=<port>`, where "
        "<port> is the one QEMU listens on (`helix-port=`, HELIX_FRAME_EXPORT_PORT). Then "
        "repair the host side that refused: `helixdiag run guest-tcp --port <port>`.",
    ),
    Failure(
        "vsockenc-no-reply", "vsockenc", F,
        "vsockenc sent a frame and is waiting forever for the reply",
        "vsockenc reads each reply with a blocking read and has no timeout. Any request the "
        "host does not answer freezes the pipeline, which stays PLAYING and reports no "
        "error. Known causes: an H4 host ignores FRAME_REQUEST, an H2 host swallows "
        "encode errors, asynchronous VideoToolbox errors send no reply, and socat may run "
        "without a backend.",
        "Find the host-side cause with `helixdiag run --all` on the host (qemu, encoder and "
        "stream layers). An H4 build never answers: see frame-request-ignored. After fixing "
        "the host, restart the pipeline. The element has no read timeout.",
    ),
    Failure(
        "vsockenc-desync", "vsockenc", F,
        "vsockenc lost message alignment with the host (bad magic or unexpected messages)",
        "vsockenc treats the next message as the reply to its one pending frame. After a bad "
        "magic or a short body, it drops the frame but keeps the connection without "
        "resynchronising, so later frames fail too. An unsolicited message (PONG, "
        "SUBSCRIBE_RESP, or a scanout push from an H3 host) leaves it one frame behind.",
        "Restart the pipeline to force a reconnect. Never send unsolicited messages on a "
        "vsockenc connection, and do not mix SUBSCRIBE clients with vsockenc on one H3 host. "
        "Servers must send an exact payload_size and never send partial messages.",
    ),
    Failure(
        "vsockenc-host-error", "vsockenc", F,
        "The host answered a frame request with an ERROR message",
        "H0–H2 hosts reply with a 272-byte ERROR when a FRAME_REQUEST or CONFIG_REQ fails. "
        "vsockenc logs \"Host encoder error\" and drops the frame. The codes: -1 is a garbled "
        "or unknown message on an H0/H1 host, -2 means no resource or IOSurface for the "
        "frame, and -99 means the encoder session could not be created.",
        "By code: -2 on an H1 host means that build rejects resource_id=0, so use an H2 or "
        "later host that accepts PIXEL_DATA. For -99, check the frame size (see "
        "encoder-unavailable). For -1, use an H2 or later host, which frames by header. Run "
        "`helixdiag logs <qemu-log> <gst-log>` for the host's side.",
    ),
    Failure(
        "vsockenc-peer-closed", "vsockenc", F,
        "The host closed vsockenc's connection, and the next frame's write failed",
        "After the host closes the connection (QEMU "
        "restart, or an idle timeout: 30 s on H2, 600 s on H3, 60 s on H4), the failed "
        "header read only marks the element disconnected. The same call then writes to the "
        "dead socket, so the pipeline errors and the stream restarts.",
        "Restart the stream; the element reconnects on its next start. Use the host log to "
        "see why it disconnected (`helixdiag logs <qemu-log>`). Idle timeouts hit during a "
        "static screen, so keep frames flowing or use a host without the short timeout.",
    ),
    Failure(
        "gst-log-missing", "vsockenc", W,
        "The GStreamer log you named does not exist",
        "A log named with --gst-log is evidence only if it exists. A missing file in a "
        "directory that does exist usually means a typo in the path, a log written somewhere "
        "else (GST_DEBUG_FILE), or a pipeline that never started. The rest of the diagnosis "
        "goes on without it.",
        "Check the path. Capture the element's log with `GST_DEBUG=vsockenc:5 "
        "GST_DEBUG_FILE=/tmp/vsockenc.log <the pipeline>` (or `docker logs <desktop container> "
        "> bridge.log` for desktop-bridge) and pass that file with --gst-log.",
    ),
    # ── drm-manager (scanout path) ────────────────────────────────────────────────────
    Failure(
        "drm-manager-not-running", "drm-manager", F,
        "The DRM lease daemon (helix-drm-manager) is not running or its socket does not answer",
        "In scanout mode every desktop asks helix-drm-manager, through /run/helix-drm/drm.sock, "
        "for a DRM lease on its own virtual connector. Without the daemon mutter-lease-launcher "
        "fails with `Failed to get lease`, GNOME never starts, nothing is drawn on any scanout "
        "and the host has no frames to push.",
        "In the VM: `sudo systemctl restart helix-drm-manager`, then check "
        "`systemctl is-active helix-drm-manager` and `journalctl -u helix-drm-manager -n 50`. "
        "Desktops started while it was down must be restarted (recreate the session).",
        explains=frozenset({"scanout-no-frames", "scanout-not-rendered", "drm-lease-failed"}),
    ),
    Failure(
        "drm-socket-stale-mount", "drm-manager", F,
        "The container sees a stale copy of the lease socket (a bind-mounted file, not the directory)",
        "When /run/helix-drm/drm.sock itself is bind-mounted into a container, the mount keeps "
        "the inode of the socket that existed then. After the daemon restarts it binds a new "
        "socket at the same path in the VM, but the container still sees the old one, which "
        "refuses every connection. Mounting the directory /run/helix-drm avoids this.",
        "Mount the directory (`-v /run/helix-drm:/run/helix-drm`), not the socket file, and "
        "recreate the container. helixdiag never removes this socket: it belongs to the daemon.",
        explains=frozenset({"drm-manager-not-running", "scanout-no-frames", "scanout-not-rendered"}),
        intrinsic=True,
    ),
    Failure(
        "drm-manager-not-master", "drm-manager", F,
        "helix-drm-manager cannot become DRM master (another display server holds the GPU)",
        "The daemon must be the only DRM master on /dev/dri/card0 to hand out leases. While "
        "another master holds the card (GDM, a stray gnome-shell or Xorg in the VM), its "
        "DRM_IOCTL_SET_MASTER fails, it logs `failed to create DRM manager` and exits; systemd "
        "restarts it every 5 s, and it fails again.",
        "In the VM: `sudo systemctl disable --now gdm` (and stop any other display server: "
        "`pgrep -a 'gdm|Xorg|gnome-shell'`), then `sudo systemctl restart helix-drm-manager`.",
        explains=frozenset({"drm-manager-not-running", "scanout-no-frames", "scanout-not-rendered",
                            "drm-lease-failed"}),
        intrinsic=True,
    ),
    Failure(
        "drm-manager-wrong-port", "drm-manager", F,
        "helix-drm-manager sends ENABLE_SCANOUT to a port the host does not listen on",
        "Before each lease the daemon enables the scanout in QEMU over TCP at QEMU_ADDR "
        "(from /etc/helix-drm-manager.env, default 10.0.2.2:15937). When that port is not the "
        "one QEMU's frame export listens on (41937 in the Helix Mac app), every lease fails "
        "with `enable scanout in QEMU failed ... connection refused`.",
        "Set `QEMU_ADDR=10.0.2.2:PORT` (the host's helix-port) in /etc/helix-drm-manager.env, "
        "`sudo systemctl restart helix-drm-manager`, then restart the desktops.",
        explains=frozenset({"scanout-no-frames", "scanout-not-rendered", "drm-lease-failed",
                            "scanout-pool-exhausted"}),
        intrinsic=True,
    ),
    Failure(
        "scanout-pool-exhausted", "drm-manager", F,
        "helix-drm-manager has no scanout left to lease",
        "The daemon hands out at most 15 scanouts (connectors Virtual-2 to Virtual-16). Each "
        "desktop holds one as long as its lease connection lives; stray desktops, test clients "
        "or leaked leases use them all up and the next desktop gets `no scanouts available`.",
        "List the desktops that hold leases (`docker ps` in the sandbox) and stop the stray "
        "ones; `cat /sys/class/drm/card0-Virtual-*/status` shows which connectors are taken. "
        "Restarting the daemon frees the pool, but running desktops must then be restarted too.",
        explains=frozenset({"scanout-no-frames", "scanout-not-rendered"}),
    ),
    Failure(
        "drm-lease-failed", "drm-manager", F,
        "A lease was asked for but not granted, or granted and never driven",
        "The daemon enabled the scanout but the kernel refused the lease "
        "(`create lease failed ... MODE_CREATE_LEASE`), or the desktop got its lease and Mutter "
        "never lit the connector (connected, but `enabled` stays `disabled`): no udev seat tag "
        "for the card, no system D-Bus for logind-stub, or a plane Mutter cannot use.",
        "Read `journalctl -u helix-drm-manager` for the lease error, and the desktop's log for "
        "`No GPUs found` or `Plane has no advertised formats`; check `/run/udev/tags/seat/` in "
        "the desktop container. Restart the desktop once fixed.",
        explains=frozenset({"scanout-no-frames", "scanout-not-rendered"}),
    ),
    # ── scanout (scanout path) ────────────────────────────────────────────────────────
    Failure(
        "scanout-outputs-missing", "scanout", F,
        "The VM has one display connector: QEMU runs without max_outputs=16",
        "Each desktop needs its own virtual connector. QEMU creates them only with "
        "`-global virtio-gpu-gl-pci.max_outputs=16`; without it the guest sees Virtual-1 "
        "alone (the console), the daemon reports `available_scanouts=0` and every lease fails.",
        "Start QEMU with `-global virtio-gpu-gl-pci.max_outputs=16` (the Helix Mac app does; "
        "an old or hand-made launch may not), then check in the VM that "
        "`ls /sys/class/drm | grep -c Virtual` says 16.",
        explains=frozenset({"scanout-pool-exhausted", "drm-lease-failed", "scanout-no-frames",
                            "scanout-not-rendered"}),
        intrinsic=True,
    ),
    Failure(
        "scanout-not-rendered", "scanout", F,
        "The bridge watches a scanout that nobody draws on",
        "The desktop's GNOME draws on the scanout it leased, whose id mutter-lease-launcher "
        "writes to $XDG_RUNTIME_DIR/helix-scanout-id. When desktop-bridge reads another id "
        "(a different XDG_RUNTIME_DIR, a stale HELIX_SCANOUT_ID) or finds no file and leases a "
        "connector of its own, it subscribes to a scanout that never changes: no frames.",
        "Make the launcher and the bridge use the same XDG_RUNTIME_DIR (normally /run/user/1000) "
        "and unset HELIX_SCANOUT_ID; restart the desktop. The id, the connector Virtual-(id+1) "
        "and the bridge's `subscribed to QEMU scanout` line must agree.",
        explains=frozenset({"scanout-no-frames"}),
        intrinsic=True,
    ),
    # ── desktop-bridge (scanout path) ─────────────────────────────────────────────────
    Failure(
        "bridge-wrong-port", "desktop-bridge", F,
        "desktop-bridge dials a port the host's frame export does not listen on",
        "The bridge connects to 10.0.2.2 at HELIX_FRAME_EXPORT_PORT (default 15937), copied "
        "from the sandbox's environment when the desktop is created. A sandbox started before "
        "the port was set keeps the old value, and `failed to start streamer ... connect to "
        "QEMU` follows every viewer.",
        "Set HELIX_FRAME_EXPORT_PORT to the host's helix-port (41937 in the Helix Mac app) in "
        "the sandbox's environment (~/helix/.env.vm), restart the sandbox and start a new "
        "session.",
        explains=frozenset({"scanout-no-frames", "scanout-connection-lost"}),
        intrinsic=True,
    ),
    # ── guest-tcp ─────────────────────────────────────────────────────────────────────
    Failure(
        "guest-tcp-refused", "guest-tcp", F,
        "TCP connect to HOST:PORT is refused: nothing listens on that port on the host",
        "Under SLiRP, the guest's 10.0.2.2:PORT is the host's 127.0.0.1:PORT. A refused "
        "connect means nothing listens there: QEMU has no frame-export listener, socat is "
        "not running, or the guest uses another port than the host.",
        "On the host, run `lsof -nP -iTCP:<port> -sTCP:LISTEN`. Restart the VM so QEMU "
        "listens (its `helix-port=`), or start socat in the socat topology. Then make the "
        "guest dial the port that listens (see port-mismatch).",
    ),
    Failure(
        "guest-tcp-timeout", "guest-tcp", F,
        "TCP connect to HOST:PORT times out",
        "Neither an accept nor a refusal arrived in time. Either the address is not reachable "
        "from here (10.0.2.2 exists only inside a QEMU user-network guest, and the host "
        "listener binds 127.0.0.1 only), or the host is stuck. A known case is a "
        "single-client host blocked on a dead connection after a container was killed.",
        "Inside the guest, dial 10.0.2.2 (`--host`). On the host itself, dial 127.0.0.1. On "
        "the host, `lsof -nP -iTCP:<port>` can show an ESTABLISHED connection whose guest "
        "end is gone. If so, restart QEMU (an H2 host times such connections out after "
        "30 s, and H3 and later hosts serve several clients at once).",
    ),
    Failure(
        "guest-no-reply", "guest-tcp", F,
        "Connected, but nothing answers PING (a bare connect proves nothing under SLiRP)",
        "Something accepted the TCP connection but does not speak HXFR. Known cases: socat "
        "accepts even when its Unix-socket backend is missing, a single-client host is "
        "stuck on an earlier dead connection, or another program (such as VNC on 5900) holds "
        "the port.",
        "On the host, `lsof -nP -iTCP:<port>` shows who holds the port. For socat, check its "
        "backend with `lsof <socket>` and `nc -U <socket> </dev/null`, then repair that "
        "socket (see socket-stale). For QEMU with a stale ESTABLISHED connection, restart "
        "the VM. For another program, see port-mismatch.",
    ),
    Failure(
        "guest-closed", "guest-tcp", F,
        "The host accepted the connection and then closed it",
        "The connection ended (EOF or reset) before a reply came. Hosts close clients on "
        "bad magic or short reads (H2–H4), H3/H4 reject a client when all 16 slots are "
        "taken, and H4 rejects one when it cannot make the socket non-blocking. A QEMU "
        "restart also closes every connection.",
        "Read the QEMU log from that moment (`helixdiag logs <qemu-log>`). \"No client slots "
        "available, rejecting\" means old clients are holding slots: stop them or restart "
        "the VM. For \"invalid magic\", check that the peer speaks HXFR on this port.",
    ),
    Failure(
        "port-mismatch", "guest-tcp", F,
        "The guest dials a different port from the one QEMU/socat listens on",
        "Port defaults are hard-coded in several places: vsockenc tcp-port, ws_stream.go, "
        "the scanout source, the DRM manager and compose all default to 15937. Meanwhile "
        "the socat era used 5900 and the Mac app uses 41937 (`helix-port=41937`). When the "
        "guest's port differs from the host's, the connect is refused, or a different "
        "listener accepts it and never answers.",
        "Use one value: set HELIX_FRAME_EXPORT_PORT to the port QEMU listens on (find it with "
        "`lsof -nP -iTCP -sTCP:LISTEN | grep -i qemu`, or `helix-port=` in QEMU's command "
        "line). Use the same value in the pipeline's `tcp-port=`, then restart the desktop "
        "container so the variable reaches it.",
        explains=frozenset({"guest-closed", "guest-no-reply", "guest-tcp-refused", "guest-tcp-timeout", "socat-not-running", "vsockenc-connect-failed"}),
    ),
    # ── socat ─────────────────────────────────────────────────────────────────────────
    Failure(
        "socat-not-running", "socat", F,
        "The socat relay (TCP port → Unix socket) is not running",
        "In the socat topology (H1-era hosts), QEMU listens only on the Unix socket "
        "helix-frame-export.sock. socat must forward 127.0.0.1:PORT to that socket. "
        "Without socat, nothing listens on the TCP port and the guest is refused.",
        "Check the backend socket first (`nc -U <socket> </dev/null`), then start "
        "`socat TCP-LISTEN:<port>,bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:<socket>`. "
        "Alternatively, move to an H2 or later host, which listens on TCP itself "
        "(`--topology tcp`).",
    ),
    Failure(
        "socat-wrong-target", "socat", F,
        "socat forwards to a different Unix socket than the one QEMU created",
        "QEMU creates `helix-frame-export.sock` relative to its working directory. Under UTM "
        "that is `~/Library/Group Containers/WDNLXAD4W8.com.utmapp.UTM/`, and it differs "
        "for the Mac app. A socat whose UNIX-CONNECT names another path (for example /tmp) "
        "connects to nothing, or to a stale file.",
        "Find the socket QEMU really uses (`lsof -nP -p <qemu-pid> | grep helix-frame-export`, "
        "or the `socket=` in its \"Frame export ready\" log line). Restart socat with that "
        "path quoted, because it contains a space: `UNIX-CONNECT:\"$HOME/Library/Group "
        "Containers/WDNLXAD4W8.com.utmapp.UTM/helix-frame-export.sock\"`.",
        explains=frozenset({"qemu-not-listening", "socket-missing"}),
    ),
    Failure(
        "socat-port-conflict", "socat", F,
        "socat's listen port is already held by another program",
        "Only one process can listen on a TCP port. When another program got there first, "
        "socat cannot bind (\"Address already in use\"), and the guest reaches that program "
        "instead. 5900, the socat-era port, is also the VNC port.",
        "Run `lsof -nP -iTCP:<port> -sTCP:LISTEN` to see the holder. Stop it if it is a "
        "leftover socat or QEMU (`kill <pid>`). Otherwise, choose a free port for both socat's "
        "TCP-LISTEN and the guest's `tcp-port=`.",
        explains=frozenset({"port-mismatch", "qemu-bind-failed", "socat-not-running"}),
    ),
    Failure(
        "socat-no-fork", "socat", W,
        "socat runs without `fork`: it serves one connection and then exits",
        "Without the `fork` option, socat handles a single connection and exits when that "
        "connection ends (socat's documented behaviour). The next connection, such as a "
        "pipeline restart, a reconnect or a helixdiag probe, is refused.",
        "Restart socat with "
        "`socat TCP-LISTEN:<port>,bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:<socket>`.",
        intrinsic=True,
    ),
    # ── unix-socket ───────────────────────────────────────────────────────────────────
    Failure(
        "socket-missing", "unix-socket", F,
        "The frame-export Unix socket does not exist at the expected path",
        "An H1 host creates `helix-frame-export.sock` in QEMU's working directory. Under UTM "
        "that is the Group Container, because the sandbox blocks /tmp. The H0 placeholder "
        "never creates a listener, and H2 and later hosts listen on TCP, with no socket at "
        "all.",
        "Look in `~/Library/Group Containers/WDNLXAD4W8.com.utmapp.UTM/`. If QEMU's log shows "
        "a socket error, see qemu-bind-failed or qemu-init-failed. With an H2 or later host, "
        "use `--topology tcp`. Otherwise restart the VM and pass the right `--socket`.",
        explains=frozenset({"qemu-not-listening"}),
    ),
    Failure(
        "socket-stale", "unix-socket", F,
        "The socket file exists, but nobody listens on it (stale socket)",
        "The socket file exists, connect() is refused, and no process holds it. A previous "
        "QEMU instance left the file behind, and the new instance's bind() failed on it "
        "silently (QEMU does not check the unlink() result and init returns without a "
        "listener), so QEMU runs with nothing listening.",
        "Remove the stale socket file. `helixdiag fix --apply` does this safely: it removes "
        "only a socket that refuses connections and that no process holds. You can also check "
        "that `lsof <socket>` prints nothing and then run `rm -f <socket>`. Then restart the "
        "VM so QEMU binds again.",
        explains=frozenset({"qemu-bind-failed", "qemu-init-failed", "qemu-not-listening"}),
    ),
    Failure(
        "socket-not-a-socket", "unix-socket", F,
        "The socket path exists, but it is not a socket",
        "A regular file, a directory or something else occupies the path, so nothing can "
        "connect there, and QEMU cannot bind a socket at it either. helixdiag never removes "
        "such a path: only a socket can be stale.",
        "Inspect it: `ls -la <path>` and `file <path>`. If you passed the wrong `--socket`, "
        "correct it. If the file really is debris, move it aside yourself "
        "(`mv <path> <path>.bak`) and restart the VM.",
        explains=frozenset({"qemu-bind-failed", "qemu-init-failed", "qemu-not-listening"}),
        intrinsic=True,
    ),
    Failure(
        "socket-permission", "unix-socket", F,
        "Permission is denied when connecting to the socket",
        "Connecting to a Unix socket needs write permission on the socket file and search "
        "permission on every directory in its path. On macOS, the App Sandbox can also deny "
        "access. connect() then fails with EACCES or EPERM.",
        "Run helixdiag (and socat) as the user who runs UTM/QEMU. Check the modes along the "
        "path with `ls -ld <dir> …` and `ls -l <socket>`. On macOS 15, reading another app's "
        "container (UTM's Group Container) from a terminal needs your consent: allow the prompt "
        "when it appears, or give the terminal app Full Disk Access (System Settings → Privacy & "
        "Security → Full Disk Access), then run again.",
    ),
    Failure(
        "socket-path-too-long", "unix-socket", F,
        "The socket path is longer than the OS allows for a Unix socket address",
        "A Unix socket address holds at most 104 bytes on macOS and 108 on Linux, including "
        "the terminating NUL. A longer absolute path cannot be bound or connected. The UTM "
        "location is 82 bytes plus the length of the user name, so on macOS a user name "
        "longer than 21 characters is enough.",
        "Connect through a shorter path. Run socat from the socket's directory with a "
        "relative `UNIX-CONNECT:helix-frame-export.sock`, or use a short symlink to the "
        "directory (`ln -s \"<dir>\" /tmp/hx`, then `--socket /tmp/hx/helix-frame-export.sock`). "
        "You can also use an H2 or later host over TCP.",
        explains=frozenset({"qemu-bind-failed", "qemu-init-failed", "qemu-not-listening"}),
        intrinsic=True,
    ),
    # ── qemu ──────────────────────────────────────────────────────────────────────────
    Failure(
        "qemu-not-running", "qemu", F,
        "No QEMU process is running",
        "Without the VM's QEMU process, nothing can serve frames. The VM is either stopped "
        "or failed to start. Documented start failures: dylibs loaded from a build sysroot, "
        "a code-signing denial (HV_DENIED), and a SPICE GL option abort.",
        "Start the VM (UTM or the Helix Mac app). If it will not start, read the output "
        "UTM/QEMU printed: for `HV_DENIED (0xfae94007)`, do not re-sign UTM.app. For "
        "`-spice gl=es: Parameter 'gl' expects 'on' or 'off'`, rebuild with SPICE. For "
        "sysroot library paths, see qemu-dylib-sysroot.",
    ),
    Failure(
        "qemu-not-listening", "qemu", F,
        "QEMU is running, but its frame export does not listen",
        "The frame export starts only from virtio_gpu_virgl_init, which runs lazily on the "
        "first virtio-gpu command after virgl initialises. The H0 placeholder module "
        "(`for-mac/qemu-helix/` in the helix repository) never creates a listener at all. The log may also "
        "just be invisible: helix-debug.log has a hard-coded path, so only stderr shows it.",
        "Read QEMU's stderr (UTM's console, or the Mac app's QEMU output), not "
        "helix-debug.log, and look for `[HELIX] Frame export ready: …`. If it shows only "
        "`Helix frame export initialized on vsock port`, install the qemu-utm build (H2 or "
        "later). If there are no helix lines at all, let the guest boot its GPU driver, or "
        "restart the VM.",
    ),
    Failure(
        "qemu-bind-failed", "qemu", F,
        "QEMU's frame export could not bind its port or socket",
        "At init, QEMU could not bind because the address was taken: on TCP hosts (H2 and "
        "later) a leftover QEMU or another process holds the port (SO_REUSEADDR is set, so "
        "TIME_WAIT is not the cause); on socket hosts (H1) the socket path is occupied (see "
        "socket-stale). Init then returns without a listener and QEMU keeps running.",
        "Run `lsof -nP -iTCP:<port>` to find the holder, and stop a stale QEMU by its PID "
        "(`kill <pid>`). For a leftover socket file, run `helixdiag fix --apply`. Then "
        "restart the VM.",
    ),
    Failure(
        "qemu-init-failed", "qemu", F,
        "QEMU's frame-export setup failed, or its accept loop died",
        "Init started (\"Initializing frame export\"), but a setup step failed: allocation, "
        "socket creation, listen() or the accept thread. Or the accept loop exited "
        "later (\"Accept failed\"). Either way, QEMU keeps running with no listener "
        "until it restarts.",
        "Restart the VM so init runs again. If it recurs, use the error text in the log "
        "(`helixdiag logs <qemu-log>`) to fix the cause; for bind errors, see "
        "qemu-bind-failed.",
    ),
    Failure(
        "qemu-binary-stale", "qemu", F,
        "The running QEMU is an older build than the one installed or expected",
        "UTM loads `Contents/Frameworks/qemu-aarch64-softmmu.framework/Versions/A/"
        "qemu-aarch64-softmmu`. It ignores a loose `libqemu-aarch64-softmmu.dylib`, and a "
        "running UTM or VM keeps the old binary until it restarts. New fixes and log lines "
        "are then missing.",
        "Install with `cd for-mac && make rebuild-qemu` (or "
        "`for-mac/qemu-helix/build-qemu-standalone.sh`), then restart the VM. Compare "
        "`strings <binary> | grep 'HELIX.*VERSION'` with the log's `[HELIX] VERSION:` line, "
        "and bump the VERSION string on every QEMU change.",
        explains=frozenset({"frame-request-ignored", "qemu-no-helix", "qemu-not-listening"}),
        intrinsic=True,
    ),
    Failure(
        "qemu-no-helix", "qemu", F,
        "The running QEMU has no Helix frame-export module",
        "The QEMU that is running is not a Helix build. It has no helix symbols or "
        "`[HELIX]` strings, its command line has no `helix-port=`, and its log has no "
        "helix lines, so nothing will ever listen for frames.",
        "Install the Helix QEMU build into UTM's framework path (`cd for-mac && make "
        "rebuild-qemu`), restart UTM and the VM, and check with "
        "`strings <binary> | grep 'HELIX.*VERSION'`.",
        explains=frozenset({"qemu-not-listening"}),
        intrinsic=True,
    ),
    Failure(
        "qemu-dylib-sysroot", "qemu", F,
        "QEMU loads its libraries from a build sysroot that UTM's sandbox blocks",
        "A custom QEMU built against UTM's sysroot records absolute library paths, for "
        "example `/Users/…/sysroot-macOS-arm64/lib/libpixman-1.0.dylib`. UTM's sandbox "
        "blocks loading from there, and UTM ships its libraries as "
        "`FOO.framework/Versions/A/FOO`, so the VM will not start.",
        "Rewrite the paths to `@rpath/FOO.framework/Versions/A/FOO` with install_name_tool: "
        "run `for-mac/qemu-helix/fix-qemu-paths.sh` (recursive, covering transitive "
        "dependencies, and leaving Homebrew's capstone and gnutls alone). Verify with "
        "`otool -L <binary>`.",
        intrinsic=True,
    ),
    Failure(
        "qemu-still-booting", "qemu", F,
        "QEMU started moments ago: the frame export does not listen yet",
        "The export is created lazily, at the guest GPU driver's first command, so for the first "
        "minute or so after QEMU starts (firmware, boot loader, kernel) nothing listens on the "
        "helix port although nothing is wrong.",
        "Wait until the guest has booted (its desktop or login prompt shows), then run helixdiag "
        "again. If the port still does not listen a few minutes after boot, see qemu-not-listening.",
    ),
    Failure(
        "qemu-network-vmnet", "qemu", F,
        "The VM uses vmnet networking: the guest cannot reach the host's 127.0.0.1 as 10.0.2.2",
        "QEMU's user-mode networking (`-netdev user`) maps 10.0.2.2 to the Mac's loopback, which "
        "is where the frame export listens. Under UTM's Shared or Bridged network (`vmnet-shared`, "
        "`vmnet-bridged`) there is no 10.0.2.2: the guest reaches the Mac at the bridge address "
        "(typically 192.168.64.1 on bridge100), where nothing listens.",
        "Switch the VM's network to user-mode networking (UTM: Network Mode \"Emulated VLAN\"; "
        "QEMU: `-netdev user`) and restart the VM: desktop-bridge always dials 10.0.2.2. For a "
        "vsockenc pipeline only, a relay on the bridge address also works: `socat "
        "TCP-LISTEN:PORT,bind=192.168.64.1,fork,reuseaddr TCP:127.0.0.1:PORT` on the Mac and "
        "`tcp-host=192.168.64.1` in the pipeline.",
    ),
    Failure(
        "qemu-log-missing", "qemu", W,
        "The QEMU log you named does not exist",
        "A log named with --qemu-log is evidence only if it exists. A missing file in a "
        "directory that does exist usually means QEMU never started with that log enabled, or "
        "its [HELIX] lines go to stderr instead (the Helix Mac app keeps them in its Logs tab). "
        "The rest of the diagnosis goes on without it.",
        "Check the path and whether the VM has started. Where QEMU writes only to stderr, copy "
        "its output into a file (UTM: the VM's debug log; the Helix app: its Logs tab) and pass "
        "that file with --qemu-log.",
    ),
    # ── encoder ───────────────────────────────────────────────────────────────────────
    Failure(
        "encoder-unavailable", "encoder", F,
        "No H.264 encoder session can be opened",
        "The host cannot create an encoder session. On macOS, VTCompressionSessionCreate or "
        "PrepareToEncodeFrames fails (invalid dimensions or properties, or VideoToolbox "
        "resource limits), and the host answers ERROR -99 or "
        "nothing. Elsewhere, helixdiag's reference encoder needs libx264 through PyAV.",
        "Check the frame size: use even dimensions at a sane resolution. Cap the number and "
        "size of sessions, because macOS limits VideoToolbox's encoder service to about "
        "1 GB. Off macOS, make sure PyAV has the encoder: "
        "`python -c \"import av; av.codec.Codec('libx264', 'w')\"`.",
        explains=frozenset({"encoder-error"}),
        intrinsic=True,
    ),
    Failure(
        "encoder-error", "encoder", F,
        "The encoder took frames but produced no output",
        "Encode failures on the host usually send no reply: an H2 "
        "host logs a failed submit but still reports success, and an asynchronous "
        "VideoToolbox error is only logged. Two early returns in the output callback (H2/H3) "
        "also leave a mutex locked, which stops every later reply.",
        "Restart the VM to get a fresh encoder. If it recurs, read the host log "
        "(`helixdiag logs <qemu-log>`) for the VideoToolbox status, and undo recent encoder "
        "configuration changes. A server must reply with ERROR on every failure.",
    ),
    Failure(
        "encoder-software-fallback", "encoder", W,
        "H.264 is encoded in software here, not with the hardware encoder the real host uses",
        "On macOS the real host encodes with VideoToolbox. When PyAV cannot open h264_videotoolbox "
        "(a PyAV older than 12.3, whose macOS wheels lack it, or a session VideoToolbox refuses), "
        "helixdiag falls back to libx264: the checks still run, but timings and the stream's "
        "shape differ from the real host's.",
        "Install PyAV 12.3 or later in helixdiag's environment (`pip install -U 'av>=12.3'`) and "
        "run again; `helixdiag serve --encoder videotoolbox` shows the error if VideoToolbox "
        "still refuses.",
    ),
    # ── stream ────────────────────────────────────────────────────────────────────────
    Failure(
        "stream-connect-failed", "stream", F,
        "The stream check could not connect to the endpoint",
        "`helixdiag send` (or the stream probe) could not open its connection to the TCP "
        "address or Unix socket it was given: refused, timed out, path missing, not a socket, "
        "permission denied, or a path too long. The kind is in the evidence; the layer "
        "probes name the cause with a more specific id.",
        "Run `helixdiag run --all` to find the broken layer. By kind: refused or timeout on "
        "TCP, see guest-tcp-refused, guest-tcp-timeout and qemu-not-listening; on a Unix "
        "socket, missing → socket-missing, refused → socket-stale, not-a-socket → "
        "socket-not-a-socket, permission → socket-permission, path-too-long → "
        "socket-path-too-long.",
    ),
    Failure(
        "stream-no-reply", "stream", F,
        "The endpoint accepted a frame request or subscription, but sent nothing back",
        "No reply came within the timeout. Known causes: an H4 host ignores FRAME_REQUEST, "
        "an asynchronous VideoToolbox error sends no reply, a single-client host is stuck "
        "on a dead connection, or a reply is discarded because its client had left. In "
        "scanout mode, frames come only when the guest flushes that scanout.",
        "Check the host's VERSION banner: if it is H4, see frame-request-ignored. Read the "
        "log for VideoToolbox errors (`helixdiag logs <qemu-log>`). Restart QEMU if it is "
        "stuck on a dead connection. In scanout mode, make the guest draw, then check "
        "again.",
    ),
    Failure(
        "stream-closed", "stream", F,
        "The endpoint closed the connection during the exchange",
        "Hosts drop a client on bad magic, short reads or oversized pixel payloads. "
        "Payloads over 64 MiB are left unread, so the next header fails its magic check. "
        "H3/H4 hosts also reject a 17th client, and H4 drops a client after a partial frame "
        "send.",
        "Read the QEMU log around that time (`helixdiag logs <qemu-log>`). Keep pixel "
        "payloads well under 64 MiB (use NV12), stop stale clients, and check that the peer "
        "speaks HXFR.",
    ),
    Failure(
        "stream-bad-magic", "stream", F,
        "The endpoint's reply does not start with the HXFR magic",
        "Every HXFR message starts with the magic 0x52465848, the bytes `48 58 46 52` "
        "(\"HXFR\"). Anything else means the peer is not a Helix frame export (for example "
        "VNC on 5900), or the byte stream is misaligned (wrong payload_size, a partial "
        "message, or leftover bytes).",
        "Check who listens with `lsof -nP -iTCP:<port> -sTCP:LISTEN`, and point the guest at "
        "the frame-export port (see port-mismatch). A misaligned stream needs a new "
        "connection: restart the client.",
    ),
    Failure(
        "stream-protocol-error", "stream", F,
        "The endpoint's reply breaks the HXFR protocol (wrong type, size or NAL table)",
        "The reply starts with the HXFR magic but is not a valid answer: an unknown or "
        "unexpected message type where the reply to this request belongs, a payload_size "
        "that does not fit its type, a payload over the size limit, or a NAL table that does "
        "not add up. The stream is misaligned, or the peer does not follow the HXFR protocol "
        "(docs/protocol.md).",
        "Reconnect to realign, and re-run with `helixdiag -v send --to <endpoint>` to see the "
        "offending header. Check the host build (`[HELIX] VERSION:` in its log) and do not "
        "mix SUBSCRIBE clients with request-mode clients on one H3 host. A custom server "
        "must match the message sizes in docs/protocol.md exactly.",
    ),
    Failure(
        "stream-no-sps-pps", "stream", F,
        "Keyframes arrive without SPS/PPS, so nothing can decode them",
        "VideoToolbox keeps the SPS and PPS in the CMFormatDescription, not in the sample. "
        "A host that does not add them to keyframes (H0/H1) sends pictures no decoder can "
        "start on, and h264parse emits nothing.",
        "Use an H2 or later host build, which adds SPS and PPS (each with a 00 00 00 01 "
        "start code) to every keyframe. A custom server must do the same.",
    ),
    Failure(
        "stream-avcc", "stream", F,
        "The H.264 arrives in AVCC form (length-prefixed) instead of Annex-B start codes",
        "H0/H1 hosts forward VideoToolbox's AVCC buffer unchanged: each NAL has a 4-byte "
        "big-endian length. vsockenc, however, advertises byte-stream, so h264parse finds "
        "no start codes.",
        "Use an H2 or later host build, which converts to Annex-B. A custom server must "
        "replace each length prefix with `00 00 00 01`.",
    ),
    Failure(
        "stream-undecodable", "stream", F,
        "The H.264 in the reply does not decode",
        "The framing is valid, but the decoder rejects the access unit or yields no picture. "
        "Causes include truncated or corrupt NAL data, parameter sets that do not match the "
        "slices, and P-frames whose reference was dropped; no single cause is known.",
        "Re-run with `-v` to see the NAL types, sizes and the decoder's message. Restart the "
        "VM to get a fresh encoder, and compare with the reference server "
        "(`helixdiag serve`) to see whether the fault is on the host side.",
    ),
    Failure(
        "stream-wrong-picture", "stream", F,
        "The decoded picture is not the one that was sent (VM console, sheared or garbled)",
        "A request with resource_id=0 and no pixel data makes the host encode scanout 0, "
        "which is the VM's own console, not the container's desktop. NV12 at a width not "
        "divisible by 4 is padded by GStreamer, but the host ignores the stride, so the "
        "picture shears.",
        "Make sure requests carry pixels (the host log should say `pixel_data=YES`). Use "
        "widths divisible by 4 and even heights, and use a host with NV12 support (H3).",
    ),
    Failure(
        "stream-nal-count", "stream", W,
        "A FRAME_RESPONSE carries more than one NAL entry",
        "The protocol allows several entries, and vsockenc joins them, but the Go scanout "
        "reader (drm.ReadFrameResponse) reads exactly one entry and then misparses the "
        "rest. Every real host sends nal_count=1.",
        "Send nal_count=1, with the whole Annex-B access unit in one entry.",
    ),
    Failure(
        "stream-slow", "stream", W,
        "Frames round-trip, but too slowly for a smooth stream",
        "Round-trip time or frame rate is below the probe's threshold. The usual "
        "cause is moving raw pixels over SLiRP TCP, which costs about 67 ms per 3.1 MB "
        "frame: about 15 FPS for 1080p NV12 and 6.8–8.7 FPS for BGRA. Main-profile H.264 "
        "also adds 1–4 frames of decoder latency.",
        "Send NV12 rather than BGRA, downscale if acceptable, or use scanout mode, which "
        "moves no pixels. Prefer Baseline or Constrained Baseline H.264.",
    ),
    Failure(
        "frame-request-ignored", "stream", F,
        "The host ignores FRAME_REQUEST (H4 build), so the vsockenc request path cannot work",
        "The legacy FRAME_REQUEST path was removed from the host on 2026-02-10 (H4). The "
        "host now skips FRAME_REQUEST silently as an unknown message, so vsockenc connects "
        "and sends, and nothing ever comes back.",
        "Use scanout mode (Helix's default on virtio-gpu, HELIX_VIDEO_MODE=scanout), or run a host that "
        "implements FRAME_REQUEST: an H2/H3 QEMU build, or the reference server "
        "(`helixdiag serve`).",
    ),
    Failure(
        "scanout-no-frames", "stream", F,
        "Subscribed to the scanout, but no frame arrives",
        "Hosts encode a scanout only when the guest flushes it, so a static desktop sends "
        "nothing — that alone proves nothing. It is a failure when the host shows why: an "
        "encoder or blit error, a subscription the frame path cannot see (`NO_SUBSCRIBER` "
        "while a client is subscribed: the export initialised twice), or a scanout that is not "
        "enabled or not drawn.",
        "Move something on the desktop and re-run. If frames still do not come, read the "
        "host's log (`helixdiag logs QEMU-LOG`) for `[ENCODE] ... status=`, `GL blit failed` "
        "or `NO_SUBSCRIBER`, and check the lease layers (`helixdiag run drm-manager scanout`).",
    ),
    Failure(
        "scanout-mid-gop", "stream", W,
        "The subscription joined mid-GOP: frames arrive, but no keyframe yet",
        "The host's encoder keeps running across subscribers and forces a keyframe only on "
        "its very first frame, then one every 60 encoded frames. A new subscriber gets "
        "P-frames that cannot be decoded until the next keyframe; on a mostly static desktop "
        "that can take long, and the viewer stays black.",
        "Move something on the desktop to produce frames until the next keyframe, or "
        "reconnect the viewer. A host that forces a keyframe on SUBSCRIBE fixes it for good.",
    ),
    Failure(
        "scanout-idle-drop", "stream", F,
        "The host dropped a subscriber that sent nothing for a while (its read timeout)",
        "A subscriber sends nothing after SUBSCRIBE. Some host builds wait for client "
        "messages with a timeout (60 s on H4, 600 s on H3) and close a silent client, so a "
        "stream freezes after a minute of viewing, with `QEMU frame read error ... EOF` in "
        "the bridge's log.",
        "Use a host build without the idle timeout, or a client that sends PING more often "
        "than the timeout. Reconnecting the viewer starts a new subscription.",
    ),
    Failure(
        "scanout-connection-lost", "stream", F,
        "The subscription's connection ended while frames were expected",
        "When the connection to the host breaks (the host closed it, a partial send, QEMU "
        "restarted), desktop-bridge's reader stops and never reconnects: viewers keep a "
        "frozen picture until the browser reconnects.",
        "Reload the viewer to start a new subscription. Read the host's log around the time "
        "of the bridge's `QEMU frame read error` (`Partial send`, `Send error`, `Client N "
        "disconnected`) to see why it closed.",
    ),
    Failure(
        "scanout-slots-exhausted", "stream", F,
        "The host has no client slot left and closes new connections at once",
        "The frame export serves at most 16 clients at a time, shared by the bridges, the "
        "drm-manager's short connections and probes. The 17th is accepted and closed "
        "immediately (`No client slots available, rejecting`), so a new viewer or lease fails.",
        "Find what holds the connections on the host (`lsof -nP -iTCP:PORT`) and stop stray "
        "clients or test tools; restarting the VM frees every slot.",
    ),
)

del F, W


def _build(entries: tuple[Failure, ...]) -> Mapping[str, Failure]:
    catalog: dict[str, Failure] = {}
    for entry in entries:
        if entry.id in catalog:
            raise ValueError(f"failure id {entry.id!r} declared twice")
        if entry.layer not in LAYER_NAMES:
            raise ValueError(f"failure {entry.id!r}: unknown layer {entry.layer!r}")
        catalog[entry.id] = entry
    for entry in entries:
        if unknown := sorted(entry.explains - catalog.keys()):
            raise ValueError(f"failure {entry.id!r} explains unknown id(s) {', '.join(unknown)}")
    return MappingProxyType(catalog)


CATALOG: Mapping[str, Failure] = _build(_ENTRIES)


def all_ids() -> list[str]:
    """Every id, in layer order (LAYER_NAMES), then in catalog order within a layer."""
    order = {name: i for i, name in enumerate(LAYER_NAMES)}
    position = {fid: i for i, fid in enumerate(CATALOG)}
    return sorted(CATALOG, key=lambda fid: (order[CATALOG[fid].layer], position[fid]))


def _normalise(failure_id: str) -> str:
    return failure_id.strip().lower().replace("_", "-").replace(" ", "-")


def get(failure_id: str) -> Failure:
    """The catalog entry for `failure_id` (case and `_`/`-` are forgiven).

    Raises `UnknownFailureId` (a `UsageError`, exit 2) naming the closest ids.
    """
    entry = CATALOG.get(failure_id) or CATALOG.get(_normalise(failure_id))
    if entry is not None:
        return entry
    suggestions = difflib.get_close_matches(_normalise(failure_id), all_ids(), n=3, cutoff=0.6)
    raise UnknownFailureId(failure_id, suggestions)


def _installed_page(failure_id: str) -> str | None:
    try:
        page = importlib.resources.files("helixdiag") / "_pages" / "failures" / f"{failure_id}.md"  # novermin - explain, host
        if page.is_file():
            return page.read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError, NotADirectoryError):
        pass
    return None


def _source_page(failure_id: str) -> str | None:
    page = Path(__file__).resolve().parent.parent / "docs" / "failures" / f"{failure_id}.md"
    if page.is_file():
        return page.read_text(encoding="utf-8")
    return None


def page_text(failure_id: str) -> str:
    """The markdown troubleshooting page for one id.

    Looks in the installed wheel first (`helixdiag/_pages/failures/`), then in the source
    tree (`docs/failures/`). If neither has the page (a broken install), a short page is
    built from the catalog entry rather than failing.
    """
    entry = get(failure_id)
    text = _installed_page(entry.id) or _source_page(entry.id)
    if text is not None:
        return text
    return (
        f"# {entry.id}\n\n"
        f"**Layer:** `{entry.layer}` · **Severity:** {entry.severity} — {entry.title}\n\n"
        f"## Why it happens\n\n{entry.explanation}\n\n"
        f"## How to fix it\n\n{entry.remedy}\n\n"
        f"_(The full page for this id is not installed; see {entry.page} in the source.)_\n"
    )
