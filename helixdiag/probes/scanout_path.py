"""What the scanout path's probes share: which video path this run judges, the desktop's
scanout id and where each source says it is, the desktop-bridge process, and which port
really answers from here (docs/scanout.md).

Each is decided once per run (`ctx.memo`) from facts; nothing here sends a byte except
`answers()`, a PING, the one proof that a port is a listening frame export (under QEMU's
user networking a TCP connect succeeds whatever the host does).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from helixdiag import net
from helixdiag.client import ExchangeOptions, ExchangeResult, PingResult, ping
from helixdiag.client.scanout import IDLE_HINT_S
from helixdiag.config import DEFAULT_DRM_SOCKET
from helixdiag.layers import VideoPath
from helixdiag.logscan.summary import BridgeLogSummary, DrmLogSummary
from helixdiag.observe.processes import ProcInfo
from helixdiag.probes.context import ProbeContext
from helixdiag.results import Outcome, failed, from_findings, passed, skipped, warned

BRIDGE = "desktop-bridge"
MANAGER_UNIT = "helix-drm-manager"
DEFAULT_SCANOUT_ID = 1  # the first desktop's lease (the pool hands out 1 first)
SCANOUT_ONLY = ("H4", "H5")  # host builds without the FRAME_REQUEST path
SCANOUT_OUTPUTS = 16  # the Helix app's -global virtio-gpu-gl-pci.max_outputs=16: the console and 15 desktops


@dataclass(frozen=True)
class PathDecision:
    path: VideoPath  # BOTH = not decided before the probes talk (auto: the subscription decides)
    reason: str


@dataclass(frozen=True)
class Bridge:
    process: ProcInfo | None
    env: dict[str, str] | None  # None: no process, or its environment is not readable here

    def get(self, name: str) -> str | None:
        return (self.env or {}).get(name)

    def who(self) -> str:
        return f"{BRIDGE} pid {self.process.pid}" if self.process else BRIDGE


@dataclass
class ScanoutTarget:
    """The desktop's scanout id as each source tells it, and the one a subscription uses."""

    chosen: int
    chosen_from: str
    sources: dict[str, int] = field(default_factory=dict)  # source → id
    problems: list[str] = field(default_factory=list)

    @property
    def disagree(self) -> bool:
        return len(set(self.sources.values())) > 1

    def to_dict(self) -> dict[str, object]:
        return {"scanout_id": self.chosen, "scanout_id_from": self.chosen_from, "sources": dict(self.sources),
                **({"problems": self.problems} if self.problems else {})}


def on_the_real_daemon(ctx: ProbeContext) -> bool:
    """Whether this run's drm-manager is the VM's (the default socket). desktop-bridge and
    mutter-lease-launcher dial that path, hard-coded: with another --drm-socket (a stand-in)
    the desktop processes and files on this machine are not on the path being judged."""
    return ctx.config.drm_socket == DEFAULT_DRM_SOCKET


def bridge(ctx: ProbeContext) -> Bridge:
    def find() -> Bridge:
        if not on_the_real_daemon(ctx):
            return Bridge(None, None)
        found = ctx.obs.processes_named(BRIDGE)
        if not found:
            return Bridge(None, None)
        proc = found[-1]  # the newest: the wrapper restarts it in a loop
        return Bridge(proc, ctx.obs.environ(proc.pid))
    return ctx.memo("bridge", find)


def bridge_log(ctx: ProbeContext) -> BridgeLogSummary | None:
    return ctx.obs.bridge_log(ctx.config.bridge_log) if ctx.config.bridge_log else None


def drm_log(ctx: ProbeContext) -> DrmLogSummary | None:
    return ctx.obs.drm_log(ctx.config.drm_log) if ctx.config.drm_log else None


def judge_log(ctx: ProbeContext, option: str, what: str, hint: str,
              summary: BridgeLogSummary | DrmLogSummary | None, said: Callable[[], str]) -> Outcome:
    """A daemon's log, given with --OPTION PATH|-: its findings speak for the probe."""
    path = getattr(ctx.config, option)
    if not path:
        return skipped(f"no {what} log given: {hint}")
    if summary is None:
        return skipped(f"no such file {path} (from {ctx.config.source(option)})")
    facts = summary.to_dict()
    facts.pop("findings", None)
    return from_findings(summary.findings, said(), {"log": path, **facts})


def decide(ctx: ProbeContext) -> PathDecision:
    """The video path this run judges, before anything talks: what the user said, what the
    topology allows, what the desktop's own environment and logs say."""
    return ctx.memo("video-path", lambda: _decide(ctx))


def _decide(ctx: ProbeContext) -> PathDecision:
    cfg = ctx.config
    if cfg.mode in ("scanout", "request"):
        return PathDecision(VideoPath(cfg.mode), f"--mode {cfg.mode}" if cfg.asked_for("mode") else cfg.source("mode"))
    if ctx.topology.kind == "socat":
        return PathDecision(VideoPath.REQUEST, "the socat topology carries vsockenc's requests only")
    here = os.environ if on_the_real_daemon(ctx) else None
    for where, env in (("this environment", here), (bridge(ctx).who() + "'s environment", bridge(ctx).env)):
        mode = (env or {}).get("HELIX_VIDEO_MODE", "")
        if mode in ("scanout", "vsockenc"):
            path = VideoPath.SCANOUT if mode == "scanout" else VideoPath.REQUEST
            return PathDecision(path, f"HELIX_VIDEO_MODE={mode} in {where}")
    log = bridge_log(ctx)
    if log is not None and log.video_mode in ("scanout", "vsockenc"):
        path = VideoPath.SCANOUT if log.video_mode == "scanout" else VideoPath.REQUEST
        return PathDecision(path, f"desktop-bridge's log ({cfg.bridge_log}) shows {log.video_mode} mode")
    qemu = ctx.obs.qemu_log(cfg.qemu_log) if cfg.qemu_log else None
    if qemu is not None and qemu.generation in SCANOUT_ONLY:
        return PathDecision(VideoPath.SCANOUT, f"QEMU's log shows an {qemu.generation} build ({qemu.version}), which "
                                               "serves scanout mode only")
    return PathDecision(VideoPath.BOTH, "--mode auto: the subscription decides (SUBSCRIBE answered → scanout)")


def not_on_path(ctx: ProbeContext, path: VideoPath) -> str | None:
    """Why a layer of `path` is not judged in this run (None: it is)."""
    decision = decide(ctx)
    if path == VideoPath.BOTH or decision.path in (VideoPath.BOTH, path):
        return None
    if path == VideoPath.REQUEST:
        return (f"the desktop is on the scanout path ({decision.reason}): vsockenc and PipeWire's frame "
                "flow are not used for video there")
    return f"the request path (vsockenc) is in use ({decision.reason}): no scanout layers to judge"


def scanout_target(ctx: ProbeContext) -> ScanoutTarget:
    return ctx.memo("scanout-target", lambda: _scanout_target(ctx))


def _scanout_target(ctx: ProbeContext) -> ScanoutTarget:
    """Every source of the desktop's scanout id, in desktop-bridge's own order (an explicit
    id, HELIX_SCANOUT_ID, the launcher's file in XDG_RUNTIME_DIR), then its log."""
    sources: dict[str, int] = {}
    problems: list[str] = []
    if ctx.config.scanout_id is not None:
        sources[ctx.config.source("scanout_id")] = ctx.config.scanout_id
    the_bridge = bridge(ctx)
    here = dict(os.environ) if on_the_real_daemon(ctx) else None
    for where, env in ((the_bridge.who(), the_bridge.env), ("this environment", here)):
        if env is None:
            continue
        value = env.get("HELIX_SCANOUT_ID", "")
        if value.isdigit() and int(value) > 0:  # the bridge ignores 0 and junk
            sources[f"HELIX_SCANOUT_ID ({where})"] = int(value)
        path, file_id, problem = ctx.obs.scanout_id_file(env.get("XDG_RUNTIME_DIR"))
        if file_id is not None:
            sources[path] = file_id
        if problem:
            problems.append(problem)
    log = bridge_log(ctx)
    if log is not None:
        if log.scanout_id is not None:
            sources[f"desktop-bridge's log ({log.scanout_id_source or 'id'})"] = log.scanout_id
        if log.subscribed_scanout is not None:
            sources["desktop-bridge's log (subscribed)"] = log.subscribed_scanout
    if sources:
        first = next(iter(sources))
        return ScanoutTarget(sources[first], first, sources, problems)
    held = drm_log(ctx).leases_held if drm_log(ctx) is not None else []
    if len(held) == 1:
        return ScanoutTarget(held[0], "the one lease the drm-manager's log shows held", {}, problems)
    return ScanoutTarget(DEFAULT_SCANOUT_ID, f"default: {DEFAULT_SCANOUT_ID}, the first desktop's lease "
                         "(no HELIX_SCANOUT_ID, scanout-id file or bridge log here; --scanout-id N names it)",
                         {}, problems)


def answers(ctx: ProbeContext, port: int) -> PingResult | net.NetError:
    """PING on HOST:PORT as the guest dials it (once per port per run)."""
    def attempt() -> PingResult | net.NetError:
        try:
            return ping(net.Endpoint("tcp", host=ctx.config.host, port=port), ctx.config.timeout)
        except net.NetError as exc:
            return exc
    return ctx.memo(("pong", port), attempt)


def host_port(ctx: ProbeContext) -> tuple[int | None, str]:
    """The port the host's frame export listens on, as far as this run knows without asking:
    what the user named, or what discovery found on this machine (the host, or --side both)."""
    cfg, topo = ctx.config, ctx.topology
    if cfg.port is not None:
        return cfg.port, cfg.source("port")
    if cfg.side != "guest" and topo.listen_port is not None:
        return topo.listen_port, topo.port_source
    return None, "unknown from the guest (give --port, the host's helix-port)"


def judge_port(ctx: ProbeContext, port: int) -> tuple[bool | None, str]:
    """Is `port` the host's frame export? True/False with why, or None when nothing can tell."""
    known, source = host_port(ctx)
    if known is not None:
        return port == known, f"the host listens on {known} ({source})"
    answer = answers(ctx, port)
    if isinstance(answer, PingResult) and answer.ok:
        return True, f"{ctx.config.host}:{port} answers PING"
    if isinstance(answer, net.NetError) and answer.kind == "refused":
        return False, f"{ctx.config.host}:{port} refuses connections: nothing listens there"
    detail = answer.detail if isinstance(answer, PingResult) else str(answer)
    return None, f"{ctx.config.host}:{port} does not tell ({detail})"


# ── the subscription: SUBSCRIBE like desktop-bridge, watch briefly, judge what came ──

WATCH_S = 3.0  # long enough for a keyframe at 30 fps with a 60-frame GOP; one client slot meanwhile
SLOT_COST = ("an active probe: it held one of the host's 16 client slots while it watched "
             "(--no-subscribe turns it off)")


def subscribe(ctx: ProbeContext, endpoint: net.Endpoint) -> ExchangeResult:
    """SUBSCRIBE to the desktop's scanout and watch until a keyframe (and a frame after it)
    or WATCH_S. Never sends CONFIG_REQ (it would recreate the real viewer's encoder).
    Raises NetError when connecting fails."""
    target = scanout_target(ctx)
    opts = ExchangeOptions(endpoint=endpoint, mode="scanout", frames=None,
                           duration=max(WATCH_S, ctx.config.timeout), size=ctx.config.size,
                           timeout=ctx.config.timeout, connect_timeout=ctx.config.timeout,
                           scanout_id=target.chosen, expect_frames=False, until_keyframe=True, bitrate=None)
    # One subscription per endpoint per run: on --side both the guest's path and the host's
    # endpoint are the same port, and a second watch would only cost another slot and 3 s.
    outcome = ctx.memo(("subscription", str(endpoint)), lambda: _attempt(ctx, opts))
    if isinstance(outcome, net.NetError):
        raise outcome
    return outcome


def _attempt(ctx: ProbeContext, opts: ExchangeOptions) -> ExchangeResult | net.NetError:
    try:
        return ctx.exchange(opts)  # validated here, or recorded for the host (a guest agent)
    except net.NetError as exc:
        return exc


def judge_subscription(ctx: ProbeContext, result: ExchangeResult) -> Outcome | None:
    """What a subscription says, as an outcome; None when SUBSCRIBE got no answer at all (the
    host has no scanout mode: the caller decides whether that is a failure or the request
    path)."""
    target = scanout_target(ctx)
    sc = result.scanout
    evidence = {"subscription": result.to_dict(), **target.to_dict(), "cost": SLOT_COST}
    closed = result.findings.get("stream-closed")
    sid = target.chosen
    if sc is None or not sc.subscribed:
        if closed is not None:  # QEMU's log says whether it had no client slot left
            return failed("stream-closed", f"the host closed the connection before answering SUBSCRIBE to "
                          f"scanout {sid} ({closed.message})",
                          remedy="Read the host's log (--qemu-log): `No client slots available` means all 16 are "
                                 "taken (scanout-slots-exhausted).", **evidence)
        if "stream-no-reply" in result.findings and result.pong:
            return None
        primary = result.primary
        if primary is not None:
            return failed(primary.failure_id, f"SUBSCRIBE to scanout {sid}: {primary.message}", **evidence)
        return None
    if closed is not None:
        silent = float(closed.evidence.get("silent_s") or 0.0)
        if silent >= IDLE_HINT_S:
            return failed("scanout-idle-drop", f"subscribed to scanout {sid}; the host closed the connection after "
                          f"{silent:.1f} s in which the subscriber sent nothing (its read timeout)", **evidence)
        return failed("scanout-connection-lost", f"subscribed to scanout {sid}; then the connection ended "
                      f"({closed.message})", **evidence)
    primary = result.primary
    if primary is not None:
        report = failed if primary.severity == "fail" else warned
        return report(primary.failure_id, f"scanout {sid}: {primary.message}", **evidence)
    if result.frames_received == 0:
        return warned("scanout-no-frames", f"subscribed to scanout {sid} ({target.chosen_from}); no frame in "
                      f"{max(WATCH_S, ctx.config.timeout):g} s and the host answers PING: the picture may be "
                      "static — move something on the desktop and re-run",
                      remedy="Move something on the desktop (or play a video) and run again. If frames still do "
                             "not come, give the host's log (--qemu-log) and the drm-manager's (--drm-log).",
                      **evidence)
    if not result.keyframes:
        return warned("scanout-mid-gop", f"scanout {sid}: {result.frames_received} frames, none a keyframe: joined "
                      "mid-GOP, a viewer stays black until the next keyframe", **evidence)
    key = f"first keyframe after {sc.first_keyframe_ms:.0f} ms" if sc.first_keyframe_ms is not None else "keyframe"
    late = f" ({sc.frames_before_keyframe} P-frames before it)" if sc.frames_before_keyframe else ""
    return passed(f"subscribed to scanout {sid}: {result.frames_received} frames pushed and decoded, {key}{late}",
                  **evidence)
