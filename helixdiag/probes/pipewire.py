"""pipewire layer (guest): the daemon answers, a video source node exists, frames flow.

Facts come from `helixdiag.observe.pipewire`; this module only judges them. Order of the
probes follows the data: daemon → source → frames (and the buffer memory type).

* `pipewire.daemon`  the client socket ($PIPEWIRE_REMOTE, $PIPEWIRE_RUNTIME_DIR or
  $XDG_RUNTIME_DIR/pipewire-0) accepts a connection and `pw-cli info 0` answers.
* `pipewire.source`  the node named by --pipewire-node (id, serial or node.name), or the
  Video/Source nodes in `pw-dump`. It is looked up before anything consumes it, because
  pipewiresrc waits ~30 s on a node that does not exist.
* `pipewire.frames`  consumes the node for a bounded window and times every frame: frames that
  arrive then stop is the static-screen stall, which the graph never shows (the node stays
  `running`).
* `pipewire.buffers` SHM vs DMA-BUF of the frames that consumer received (warns on SHM: every
  frame is copied and sent as pixels, resource_id=0).

On `--side both` (CI, the self-test) a machine with no PipeWire session, or no video source,
is not a guest: those probes `skip` with the reason unless the pipewire layer (or
--pipewire-node) was asked for. On `--side guest` the absence is a failure.
"""

from __future__ import annotations

import os
from typing import Any

from helixdiag.layers import Side
from helixdiag.observe import pipewire_graph as pwg
from helixdiag.observe.pipewire import Capture, Lookup
from helixdiag.probes import register
from helixdiag.probes.context import ProbeContext
from helixdiag.results import Outcome, Status, failed, passed, skipped, warned

FRAME_WINDOW_S = 2.0  # how long frames are counted
STARTUP_S = 4.0  # for the consumer to link and reach PLAYING (first run may scan the gst registry)
AT_END_DUMP_S = 2.0  # the pw-dump taken at the end of the window, consumer still linked
# startup + window + the pw-dump at the end + stopping the consumer (≤ 3 s) + a first pw-dump
FRAMES_TIMEOUT_S = STARTUP_S + FRAME_WINDOW_S + AT_END_DUMP_S + 3.0 + 5.0


# --------------------------------------------------------------------------- shared per run

def _tool_timeout(ctx: ProbeContext) -> float:
    return min(max(2.0, ctx.config.timeout), 10.0)


def _not_a_guest(ctx: ProbeContext) -> bool:
    """`--side both` and nobody asked for PipeWire: an absent component is a skip."""
    return ctx.absent_is_skip("pipewire", "pipewire_node")


def _lookup(ctx: ProbeContext) -> Lookup:
    return ctx.obs.pipewire.lookup(_tool_timeout(ctx))


# --------------------------------------------------------------------------- pipewire.daemon

@register("pipewire.daemon", layer="pipewire", side=Side.GUEST,
          description="the PipeWire socket accepts a connection and `pw-cli info 0` answers")
def pipewire_daemon(ctx: ProbeContext) -> Outcome:
    facts = ctx.obs.pipewire
    loc = facts.location()
    evidence: dict[str, Any] = loc.describe()
    if loc.path is None:
        error = f"{loc.source}, so there is no socket to connect to"
    else:
        error = facts.connect_error(ctx.config.timeout)
        if error is not None:
            evidence["connect_error"] = error
    info = facts.cli_info(_tool_timeout(ctx)) if loc.path is not None else None
    if info is not None:
        evidence["pw_cli"] = {"argv": "pw-cli info 0", "exit": info.returncode}
        if info.error or not info.ok:
            seen = info.error or info.stderr.strip() or info.stdout.strip() or f"exit {info.returncode}"
            evidence["pw_cli"]["error"] = seen
            if info.error and "not installed" in info.error:
                info = None  # judge on connect() alone
            elif error is None:
                error = f"the socket accepts connections but `pw-cli info 0` failed: {seen}"
            else:
                error = seen  # the client's own words: 'Error: "failed to connect: Host is down"'
        elif error is not None:
            error = None  # the real client got in: trust it over our bare connect()
    if error is not None:
        elsewhere = pwg.other_sessions(facts.sockets(), loc.path)
        if elsewhere:
            evidence["other_sessions"] = elsewhere
        if _not_a_guest(ctx):
            return skipped(f"no PipeWire session on this machine (not a guest): {error}", **evidence)
        where = f" at {loc.path}" if loc.path else ""
        remedy = None
        if elsewhere:
            run_dir = os.path.dirname(elsewhere[0])
            remedy = (f"A PipeWire session socket exists at {elsewhere[0]}: run helixdiag as that "
                      f"session's user with its environment, e.g. `XDG_RUNTIME_DIR={run_dir} helixdiag run "
                      f"pipewire` (inside the desktop container: `docker exec -u <user> -e "
                      f"XDG_RUNTIME_DIR={run_dir} …`).")
        return failed("pipewire-not-running", f"PipeWire is not reachable{where}: {error}",
                      remedy=remedy, **evidence)
    core = pwg.parse_core_info(info.stdout) if info is not None else {}
    evidence.update({k.replace("-", "_"): v for k, v in core.items() if k != "type"})
    version = f"PipeWire {core['version']}" if core.get("version") else "PipeWire"
    how = "answers `pw-cli info 0`" if info is not None else "accepts connections (pw-cli not installed)"
    return passed(f"{version} {how} on {loc.path} (from {loc.source})", **evidence)


# --------------------------------------------------------------------------- pipewire.source

def _pick(ctx: ProbeContext) -> tuple[pwg.PwNode | None, Outcome]:
    """The node to consume, and the outcome that describes it (a failure when there is none)."""
    daemon = ctx.result("pipewire.daemon")
    if daemon is not None and daemon.status == Status.SKIP:
        return None, skipped(f"{daemon.summary} (see pipewire.daemon)")
    look = _lookup(ctx)
    ref = ctx.config.pipewire_node
    evidence: dict[str, Any] = {"pw_dump": look.command}
    if ref:
        evidence["asked_for"] = ref
        evidence["asked_from"] = ctx.config.source("pipewire_node")
    if look.graph is None:
        if look.error and "not installed" in look.error:
            return None, skipped(f"cannot list the PipeWire graph: {look.error} (package pipewire-bin)",
                                 **evidence)
        if _not_a_guest(ctx):
            return None, skipped(f"no PipeWire session on this machine (not a guest): {look.error}", **evidence)
        return None, failed("pipewire-not-running", f"pw-dump cannot read the PipeWire graph: {look.error}",
                            **evidence)
    graph = look.graph
    sources = graph.video_sources()
    evidence["session_manager"] = graph.session_manager()
    if len(sources) != 1 or ref:
        evidence["video_sources"] = [n.describe() for n in sources]
    if ref:
        node, matched_by = graph.find(ref)
        if node is None:
            listed = ", ".join(f"{n.id} ({n.name})" for n in sources) or "none"
            return None, failed(
                "pipewire-no-source",
                f"no node {ref!r} (id, serial or node.name) in the PipeWire graph; video sources: {listed}",
                nodes=_node_list(graph), **evidence)
        evidence.update(node=node.describe(), matched_by=matched_by)
        if not node.is_video_source:
            return None, failed(
                "pipewire-no-source",
                f"node {node.id} ({node.name}) is {node.media_class or 'a node without media.class'}, "
                f"not a video source", **evidence)
    else:
        node = graph.choose_source()
        if node is None:
            if _not_a_guest(ctx):
                return None, skipped("no PipeWire video source on this machine (not a guest)",
                                     nodes=_node_list(graph), **evidence)
            return None, failed(
                "pipewire-no-source",
                f"PipeWire runs but no node is a video source ({', '.join(pwg.VIDEO_SOURCE_CLASSES)}); "
                f"{len(graph.nodes)} node(s) in the graph",
                nodes=_node_list(graph), **evidence)
        evidence.update(node=node.describe(), matched_by="the only video source" if len(sources) == 1
                        else "chosen among several: running first, then the newest")
    if node.state == "error":
        return None, failed("pipewire-no-source",
                            f"node {node.id} ({node.name}) is in state error: {node.error or 'no message'}",
                            **evidence)
    evidence = {"node": evidence.pop("node"), "matched_by": evidence.pop("matched_by"), **evidence}
    fmt = node.format or (node.offered[0] if node.offered else None)
    shape = f", {fmt.format} {fmt.size or ''} @ {fmt.framerate}" if fmt else ""
    return node, passed(f"video source node {node.id} (serial {node.serial}, {node.name!s}) "
                        f"{node.media_class}, {node.state}{shape}", **evidence)


def _node_list(graph: pwg.PwGraph) -> list[dict[str, Any]]:
    return [{"id": n.id, "name": n.name, "media_class": n.media_class, "state": n.state}
            for n in graph.nodes[:30]]


@register("pipewire.source", layer="pipewire", side=Side.GUEST, needs=("pipewire.daemon",),
          description="the video source node (--pipewire-node, or the Video/Source in pw-dump) exists")
def pipewire_source(ctx: ProbeContext) -> Outcome:
    return _pick(ctx)[1]


# --------------------------------------------------------------------------- pipewire.frames

def _capture(ctx: ProbeContext, node: pwg.PwNode) -> Capture:
    return ctx.obs.pipewire.capture(node, window=FRAME_WINDOW_S, startup=STARTUP_S, at_end_timeout=AT_END_DUMP_S)


def _consumed(ctx: ProbeContext) -> tuple[pwg.PwNode | None, Capture | None, Outcome]:
    """The source node and its one consumer run, or why there is none (as an outcome)."""
    node, outcome = _pick(ctx)
    if node is None:
        return None, None, outcome
    cap = _capture(ctx, node)
    if cap.run.error:
        return node, None, skipped(f"cannot consume frames: {cap.run.error} (gstreamer1.0-tools)",
                                   consumer=" ".join(cap.run.argv))
    return node, cap, outcome


def _end_state(cap: Capture) -> dict[str, Any]:
    """Node and link states at the end of the window, with the consumer still linked."""
    graph = cap.end_graph
    if graph is None:
        return {}
    node = graph.node(cap.node.id)
    if node is None or node.serial != cap.node.serial:
        return {"node_at_end": "gone"}
    links = graph.links_from(node.id)
    return {"node_state_at_end": node.state,
            "links_at_end": [{"id": lk.id, "to_node": lk.input_node, "state": lk.state} for lk in links]}


def _frame_evidence(cap: Capture) -> dict[str, Any]:
    log, run = cap.log, cap.run
    ev: dict[str, Any] = {"node": {"id": cap.node.id, "serial": cap.node.serial, "name": cap.node.name}}
    if cap.stats is not None:
        ev.update(cap.stats.describe())
        ev["arrivals_s"] = [round(t - run.window_start, 3) for t in log.frames
                            if run.window_start <= t <= run.window_end][:40]
    else:
        ev.update(frames=len(log.frames), window_s=0.0)
    ev["playing_after_s"] = None if log.playing_at is None else round(log.playing_at, 3)
    if log.frame_bytes:
        ev["frame_bytes"] = log.frame_bytes[0]
    caps = pwg.parse_caps(log.caps)
    if caps:
        ev["caps"] = caps
    ev["memory"], ev["memory_basis"] = _memory(cap)
    ev.update(_end_state(cap))
    ev["consumer"] = " ".join(run.argv)
    ev["consumer_exit"] = run.returncode
    if log.errors:
        ev["errors"] = list(log.errors[:6])
    return ev


def _memory(cap: Capture) -> tuple[str, str]:
    offered = None
    if cap.end_graph is not None:
        for port in cap.end_graph.output_ports(cap.node.id):
            if port.data_types is not None:
                offered = port.data_types
    return pwg.classify_memory(cap.log.caps, cap.log.memory_types, offered)


@register("pipewire.frames", layer="pipewire", side=Side.GUEST, needs=("pipewire.source",),
          timeout=FRAMES_TIMEOUT_S,
          description=f"frames flow from the source over a {FRAME_WINDOW_S:g} s window (no stall after a burst)")
def pipewire_frames(ctx: ProbeContext) -> Outcome:
    node, cap, outcome = _consumed(ctx)
    if cap is None:
        return outcome
    ev = _frame_evidence(cap)
    log, stats = cap.log, cap.stats
    label = f"node {node.id} ({node.name})"
    errors = " ".join(log.errors)
    if "no element" in errors or "erroneous pipeline" in errors:
        return skipped(f"cannot consume frames: {log.errors[0]} (gstreamer1.0-pipewire)", **ev)
    if "can't connect" in errors:
        return failed("pipewire-not-running", f"pipewiresrc cannot connect to PipeWire: {log.errors[0]}", **ev)
    if "target not found" in errors or ev.get("node_at_end") == "gone":
        return failed("pipewire-no-source",
                      f"{label} disappeared while it was consumed" + (f": {log.errors[0]}" if log.errors else ""),
                      **ev)
    if stats is None:  # never reached PLAYING: not linked, or the format never negotiated
        if log.errors:
            return Outcome(Status.ERROR, f"pipewiresrc failed on {label}: {log.errors[0]}", evidence=ev)
        look = _lookup(ctx)
        if look.graph is not None and look.graph.session_manager() is None:
            return failed(
                "pipewire-not-running",
                f"PipeWire runs without a session manager: nothing linked pipewiresrc to {label} "
                f"within {STARTUP_S:g} s",
                remedy="Start WirePlumber in the session (it needs the D-Bus session bus); without a "
                       "session manager PipeWire never links a consumer to a source.", **ev)
        return failed(
            "pipewire-static-stall",
            f"pipewiresrc never started streaming from {label}: not linked or not negotiated after "
            f"{STARTUP_S:g} s, no frame and no error",
            **ev)
    if stats.frames == 0:
        end = ev.get("node_state_at_end", "?")
        return failed(
            "pipewire-static-stall",
            f"{label} is linked (state {end}) but sent no frame in {stats.window_s:.1f} s: a static "
            "screen, or a producer that stopped (the graph cannot tell)",
            **ev)
    if stats.burst_then_silence:
        end = ev.get("node_state_at_end")
        paused = end == "idle" or any(lk.get("state") == "paused" for lk in ev.get("links_at_end", []))
        why = ("the producer paused its stream (node idle, link paused)" if paused
               else f"the node still says {end or 'running'}: only the timing shows the stall")
        return failed(
            "pipewire-static-stall",
            f"{stats.frames} frame(s) from {label} in the first {stats.last_frame_s:.2f} s, then nothing for "
            f"{stats.since_last_s:.2f} s of the {stats.window_s:.1f} s window; {why}",
            **ev)
    fps = f"{stats.fps:.1f} fps" if stats.fps is not None else "1 frame"
    shape = ev.get("caps", {})
    what = " ".join(str(v) for v in (shape.get("format"), shape.get("size")) if v)
    return passed(f"{stats.frames} frames from {label} in {stats.window_s:.1f} s ({fps}{', ' + what if what else ''}), "
                  f"last one {stats.since_last_s * 1000:.0f} ms before the end", **ev)


# --------------------------------------------------------------------------- pipewire.buffers

@register("pipewire.buffers", layer="pipewire", side=Side.GUEST, needs=("pipewire.source",),
          timeout=FRAMES_TIMEOUT_S,
          description="the frames arrive as DMA-BUF (zero-copy possible) or in shared memory")
def pipewire_buffers(ctx: ProbeContext) -> Outcome:
    node, cap, outcome = _consumed(ctx)
    if cap is None:
        return outcome
    kind, basis = _memory(cap)
    ev: dict[str, Any] = {"memory": kind, "memory_basis": basis,
                          "node": {"id": node.id, "serial": node.serial, "name": node.name},
                          "pool_memory_types": list(cap.log.memory_types)}
    caps = pwg.parse_caps(cap.log.caps)
    if caps:
        ev["caps"] = caps
    offered: list[str] = []
    if cap.end_graph is not None:
        for port in cap.end_graph.output_ports(node.id):
            offered += [t for t in port.data_types or () if t not in offered]
        ev["producer_buffer_types"] = offered
    if kind == "dmabuf":
        return passed(f"frames from node {node.id} arrive as DMA-BUF: vsockenc can pass a resource id",
                      **ev)
    if kind == "shm":
        size = caps.get("size")
        seen = cap.log.memory_types
        how = (f"arrive in shared memory ({'/'.join(seen)})" if seen
               else f"can only come in shared memory (the producer offers {'/'.join(offered) or 'no DmaBuf'})")
        return warned(
            "pipewire-shm-buffers",
            f"frames from node {node.id} {how}, not DMA-BUF: every frame is copied and sent as "
            f"pixels{f' ({size})' if size else ''}, resource_id=0", **ev)
    return skipped(f"the buffer memory type of node {node.id} is not visible: {basis}", **ev)
