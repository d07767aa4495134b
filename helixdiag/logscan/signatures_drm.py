"""The signature table's helix-drm-manager rows (log kind `drm`): part of `SIGNATURES`.

The daemon's slog lines (as journald shows them, or bare), systemd's lines about its unit,
and the desktop's side of a lease (mutter-lease-launcher, logind-stub, Mutter) where they show
up. Patterns match a line's content (`slog.parse`): the message, then ` key=value` attributes.
"""

from __future__ import annotations

from typing import Any

from helixdiag.logscan.drm import _DrmScanner
from helixdiag.logscan.scanner import add_note, count, mark
from helixdiag.logscan.signature import _IP, _U, Signature, _sig
from helixdiag.logscan.slog import attr


def _d(name: str, pattern: str, meaning: str, failure_id: str | None = None, **kw: Any) -> Signature:
    return _sig("drm", name, pattern, meaning, failure_id, **kw)


_ERRV = r'(?: err="?(?P<error>[^"]{0,2000}))?'
_ERR_IS = 'err="?(?P<error>'  # the err attribute, its text starting with …
_ENABLE = 'enable scanout in QEMU failed err="?'
LEASE_FAILED = count("lease_failures")
CONNECTORS = attr("connectors", "connectors", conv="int")
AVAILABLE = (attr("available_scanouts", "available_scanouts", conv="int"), attr("socket", "socket"))

_DRM: tuple[Signature, ...] = (
    # ── start ──
    _d("start", r"starting helix-drm-manager", "the daemon starts: check qemu_addr's port (a new "
       "run: the journal holds every restart)", level="INFO",
       handler=_DrmScanner._on_start),
    _d("resources-one", r"DRM resources enumerated .*\bconnectors=1\b",
       "one connector: QEMU runs without max_outputs=16", "scanout-outputs-missing", level="INFO",
       effect=CONNECTORS),
    _d("resources", r"DRM resources enumerated", "connectors and CRTCs (16 expected)",
       level="INFO",
       effect=CONNECTORS),
    _d("connector", r"connector (?:index|id)=", "a connector's object id", level="DEBUG"),
    _d("crtc", r"crtc (?:index|id)=", "a CRTC's object id", level="DEBUG"),
    _d("listening-none", r"listening for lease requests .*\bavailable_scanouts=0\b",
       "nothing to lease: QEMU runs without max_outputs=16", "scanout-outputs-missing",
       when="the connector count is 1, or not in the log", level="INFO",
       effect=(*AVAILABLE, mark("none_available"))),
    _d("listening", r"listening for lease requests", "the socket is up (15 scanouts expected)",
       level="INFO",
       effect=AVAILABLE),
    _d("not-master", rf'failed to create DRM manager {_ERR_IS}[^"]{{0,500}}SET_MASTER[^"]{{0,500}})',
       "another DRM master holds the card (GDM?): the daemon exits, systemd restarts it in 5 s",
       "drm-manager-not-master", level="ERROR"),
    _d("create-failed", rf"failed to create DRM manager{_ERRV}",
       "the daemon could not open the DRM device and exits", "drm-manager-not-running",
       level="ERROR"),
    _d("manager-error", rf"DRM manager error{_ERRV}", "the daemon could not listen and exits",
       "drm-manager-not-running", level="ERROR"),
    _d("chmod-failed", r"chmod socket failed", "the socket's mode could not be set", level="WARN",
       note=True),
    _d("accept-error", r"accept error", "the listener failed", level="ERROR", note=True),
    _d("read-request-failed", r"read request failed",
       "a client connected and closed without a request (a connect-only probe)", level="ERROR"),
    _d("unknown-command", r"unknown command", "a request with an unknown command: helixdiag's "
       "liveness probe writes one such ERROR line per check", level="ERROR",
       effect=(count("unknown_command_probes"),
               add_note("probe-lines", "'unknown command' ERROR lines: each is a liveness probe "
                        "(helixdiag's own writes one per check), not a fault"))),
    # ── a lease ──
    _d("lease-request", r"lease request received", "a desktop asks for a lease", level="INFO"),
    _d("no-scanouts", rf"no scanouts available{_ERRV}", "the pool is empty: every scanout is "
       "leased", "scanout-pool-exhausted", level="ERROR",
       effect=LEASE_FAILED),
    _d("allocated", r"allocated scanout", "an id taken from the pool", level="INFO"),
    _d("confirmed-enabled", r"QEMU confirmed scanout enabled", "the host enabled the scanout",
       level="INFO"),
    _d("enable-wrong-port", rf'{_ENABLE}connect to QEMU (?P<addr>{_IP}:(?P<port>{_U})): '
       r'(?P<error>[^"]{0,500}(?:connection refused|i/o timeout)[^"]{0,200})',
       "nothing answers at QEMU_ADDR: the host listens on another port", "drm-manager-wrong-port",
       level="ERROR",
       effect=LEASE_FAILED),
    _d("enable-eof", rf'{_ENABLE}(?P<error>read scanout response: read header: EOF)',
       "the host closed the connection unanswered: no client slot left", "scanout-slots-exhausted",
       level="ERROR",
       effect=LEASE_FAILED),
    _d("enable-refused", rf'{_ENABLE}(?P<error>QEMU refused to enable scanout (?P<scanout>{_U}))',
       "the host refused the scanout id (0, or not below max_outputs)", "drm-lease-failed",
       level="ERROR",
       effect=LEASE_FAILED),
    _d("enable-failed", rf"enable scanout in QEMU failed{_ERRV}",
       "ENABLE_SCANOUT failed (no answer within 10 s …)", "drm-lease-failed", level="ERROR",
       effect=LEASE_FAILED),
    _d("scanout-enabled", r"scanout enabled in QEMU", "scanout enabled", level="INFO"),
    _d("creating-lease", r"creating DRM lease", "lease ioctl next (connector, CRTC, planes)",
       level="INFO"),
    _d("create-lease-failed", rf"create lease failed{_ERRV}",
       "the kernel refused the lease (ENOSPC: UNIVERSAL_PLANES not set; or wrong plane ids)",
       "drm-lease-failed", level="ERROR",
       effect=LEASE_FAILED),
    _d("lease-created", r"DRM lease created", "lease created", level="INFO"),
    _d("send-fd-failed", r"send lease FD failed", "the client left before its lease fd was sent",
       level="ERROR", note=True),
    _d("lease-sent", r"lease FD sent to client", "a desktop holds this scanout", level="INFO",
       handler=_DrmScanner._on_lease_sent),
    _d("client-gone", r"lease client disconnected, releasing scanout",
       "the desktop ended (or its launcher died)", level="INFO"),
    _d("release-unknown", r"release request for unknown scanout", "release of an id not leased",
       level="WARN", note=True),
    _d("releasing", r"releasing lease", "the lease is revoked and the scanout disabled",
       level="INFO",
       handler=_DrmScanner._on_release),
    _d("revoke-failed", r"revoke lease failed", "the lease could not be revoked", level="WARN",
       note=True),
    _d("disable-connect-failed", r"connect to QEMU for disable failed",
       "DISABLE_SCANOUT could not reach the host", level="WARN", note=True),
    _d("disable-write-failed", r"write disable scanout failed", "DISABLE_SCANOUT not sent",
       level="WARN", note=True),
    _d("disable-no-response", r"read disable response failed",
       "no answer to DISABLE_SCANOUT: the normal outcome (no host answers it; a 10 s wait)",
       level="WARN"),
    _d("confirmed-disabled", r"QEMU confirmed scanout disabled", "scanout disabled",
       level="INFO"),
    _d("drop-master-failed", r"drop master failed", "at exit", level="WARN"),
    _d("shutdown", r"helix-drm-manager shutdown complete", "the daemon stopped", level="INFO"),
    _d("universal-planes", r"DRM_CLIENT_CAP_UNIVERSAL_PLANES failed: (?P<error>.*)",
       "leases with planes will fail", level="stderr", note=True, related="drm-lease-failed"),
    # ── systemd about the unit ──
    _d("unit-exited", r"helix-drm-manager\.service: Main process exited, code=(?P<code>\w{1,20}), "
       r"status=(?P<status>\S{1,40})", "the daemon exited", note=True),
    _d("unit-restart", r"helix-drm-manager\.service: Scheduled restart job, restart counter is at "
       rf"(?P<n>{_U})", "systemd restarts the daemon (5 s after it exited)", note=True),
    _d("unit-failed", r"helix-drm-manager\.service: Failed with result '(?P<result>[^']{1,40})'",
       "the unit failed", note=True),
    # ── mutter-lease-launcher (in the desktop container) ──
    _d("launcher.start", r"=== Mutter Lease Launcher ===", "the launcher starts"),
    _d("launcher.requesting", r"Requesting DRM lease\.\.\.", "the launcher asks for a lease"),
    _d("launcher.no-socket", rf'Failed to get lease {_ERR_IS}connect to (?P<socket>[^:"\s]{{1,300}}): '
       r'[^"]{0,500})', "the daemon's socket is missing or refuses: no lease, no GNOME",
       "drm-manager-not-running", level="ERROR"),
    _d("launcher.pool-empty", rf'Failed to get lease {_ERR_IS}lease request failed: no scanouts '
       r'available[^"]{0,200})', "the daemon has no scanout left", "scanout-pool-exhausted",
       level="ERROR"),
    _d("launcher.wrong-port", rf'Failed to get lease {_ERR_IS}lease request failed: QEMU enable '
       rf'failed: connect to QEMU (?P<addr>{_IP}:(?P<port>{_U}))[^"]{{0,200}})',
       "the daemon could not reach the host (QEMU_ADDR)", "drm-manager-wrong-port", level="ERROR"),
    _d("launcher.lease-failed", rf"Failed to get lease{_ERRV}", "no lease: GNOME does not start",
       "drm-lease-failed", level="ERROR"),
    _d("launcher.acquired", r"Lease acquired", "the desktop's scanout id (it must match the "
       "bridge's)", level="INFO",
       effect=attr("launcher_scanout_id", "scanout_id", conv="int")),
    _d("launcher.wrote-id", r"Wrote scanout ID file", "the id file desktop-bridge reads",
       level="INFO"),
    _d("launcher.id-file-failed", r"Failed to write scanout ID file",
       "desktop-bridge will not find the id and leases a connector of its own", level="WARN",
       note=True, related="scanout-not-rendered"),
    _d("launcher.no-logind", r"systemd-logind not running \(container mode\)",
       "logind-stub stands in", level="INFO"),
    _d("launcher.starting-stub", r"Starting logind-stub\.\.\.", "logind-stub starting",
       level="INFO"),
    _d("launcher.stub-started", r"logind-stub started", "logind-stub running", level="INFO"),
    _d("launcher.stub-failed", r"Failed to start logind-stub",
       "Mutter gets no lease fd: nothing is drawn", "drm-lease-failed", level="ERROR"),
    _d("launcher.pipewire", r"PipeWire start(?:ed| failed \(non-fatal\))", "PipeWire",
       level="INFO"),
    _d("launcher.wireplumber", r"WirePlumber started", "WirePlumber", level="INFO"),
    _d("launcher.launching", r"Launching gnome-shell via dbus-run-session\.\.\.",
       "GNOME starting", level="INFO"),
    _d("launcher.session-bus", r"Using existing D-Bus session bus", "GNOME starting",
       level="INFO"),
    _d("launcher.shell-started", r"gnome-shell started", "GNOME running", level="INFO"),
    _d("launcher.shell-failed", r"Failed to start gnome-shell", "GNOME did not start",
       level="ERROR", note=True, related="drm-lease-failed"),
    _d("launcher.waiting", r"Waiting for Wayland socket\.\.\.", "waiting for GNOME",
       level="INFO"),
    _d("launcher.wayland-ready", r"Wayland socket ready!", "GNOME is up", level="INFO"),
    _d("launcher.shutting-down", r"Shutting down\.\.\.", "the desktop stops", level="INFO"),
    _d("launcher.released", r"DRM lease released", "the lease was given back", level="INFO"),
    # ── logind-stub ──
    _d("stub.start", r"starting logind-stub", "logind-stub starts", level="INFO"),
    _d("stub.name", r"Acquired org\.freedesktop\.login1 bus name", "logind-stub owns login1",
       level="INFO"),
    _d("stub.retry", r"Name not yet available, retrying\.\.\.", "waiting for the bus name",
       level="INFO"),
    _d("stub.no-bus", r"Failed to connect to system bus",
       "no system D-Bus in the container: Mutter never gets its lease", "drm-lease-failed",
       level="ERROR"),
    _d("stub.no-name", r"Failed to acquire name after retries", "logind-stub could not own "
       "login1: Mutter never gets its lease", "drm-lease-failed", level="ERROR"),
    _d("stub.ready", r"logind-stub ready", "logind-stub ready", level="INFO"),
    _d("stub.take-device", r"TakeDevice", "Mutter asks for a device", level="INFO"),
    _d("stub.lease-fd", r"Returning lease FD for DRM device", "Mutter got the lease",
       level="INFO"),
    _d("stub.dup-failed", r"Failed to dup lease FD", "Mutter gets no lease", "drm-lease-failed",
       level="ERROR"),
    # ── Mutter (gnome-shell's own lines) ──
    _d("mutter.device", r"Added device '(?P<device>[^']{1,200})' \((?P<driver>[^)]{1,40})\) using "
       r"atomic mode setting", "Mutter drives the leased card", anywhere=True,
       needle="using atomic mode setting", detect=False),
    _d("mutter.no-gpus", r"No GPUs found", "Mutter found no card (the udev seat tag is missing)",
       "drm-lease-failed", anywhere=True, needle="No GPUs found", detect=False),
    _d("mutter.no-formats", r"Plane has no advertised formats",
       "Mutter cannot use the leased plane", "drm-lease-failed", anywhere=True,
       needle="Plane has no advertised formats", detect=False),
)
