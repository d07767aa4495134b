"""qemu layer (host): the QEMU process, what it listens on, its binary, its log, its dylibs."""

from __future__ import annotations

import os
import time

from helixdiag.layers import Side, VideoPath
from helixdiag.observe import parsers
from helixdiag.probes import register, scanout_path
from helixdiag.probes.context import ProbeContext
from helixdiag.probes.scanout_path import SCANOUT_OUTPUTS
from helixdiag.results import Outcome, failed, from_findings, passed, skipped, warned
from helixdiag.timefmt import iso_time
from helixdiag.topology import WEAK_SOURCES, QemuInstance

BOOT_WINDOW_S = 90.0  # from QEMU's start to the guest GPU driver's first command
UTM_DEBUG_LOG = "debug.log"  # in the VM bundle's Data directory, with Debug Log on (UTM's QEMU config)


def _stand_in(ctx: ProbeContext) -> dict[str, object] | None:
    """The process serving the endpoint when it is not QEMU (e.g. `helixdiag serve`)."""
    topo = ctx.topology
    pids: list[int | None] = []
    if topo.socket_path:
        pids += [h.pid for h in ctx.obs.socket_holders(topo.socket_path) if h.listening]
    if topo.kind == "tcp" and topo.listen_port:
        pids += [lis.pid for lis in ctx.obs.listeners_on_port(topo.listen_port)]
    for pid in pids:
        proc = ctx.obs.process(pid)
        if proc is not None and not proc.is_qemu and not proc.is_socat:
            return ctx.obs.who(pid)
    return None


def _no_qemu(ctx: ProbeContext) -> Outcome:
    """Why a QEMU check that needs a QEMU process is skipped without one."""
    stand_in = _stand_in(ctx)
    if stand_in is not None:
        return skipped(f"the endpoint is served by pid {stand_in['pid']} ({stand_in['role']}), "
                       "not QEMU: QEMU checks skipped", stand_in=stand_in, **ctx.topology.judged("qemu"))
    return skipped("no QEMU process for this path")


def _path_name(ctx: ProbeContext) -> str:
    topo = ctx.topology
    parts = [f"port {topo.listen_port}"] if topo.listen_port else []
    parts += [f"socket {topo.socket_path}"] if topo.socket_path else []
    return " / ".join(parts)


@register("qemu.process", layer="qemu", side=Side.HOST,
          description="a QEMU process runs for this path, with its helix-port and virtio-gpu device")
def qemu_process(ctx: ProbeContext) -> Outcome:
    q = ctx.topology.qemu
    if q is None:
        if _stand_in(ctx) is not None:
            return _no_qemu(ctx)
        others = ctx.topology.all_qemu
        if others and _path_name(ctx):
            return failed("qemu-not-running",
                          f"no QEMU runs for {_path_name(ctx)}; {len(others)} other QEMU process(es) on "
                          "this machine belong to other paths (see also_on_this_machine)",
                          processes_scanned=len(ctx.obs.processes), **ctx.topology.judged("qemu"))
        return failed("qemu-not-running", "no QEMU process (qemu-system-*, qemu-aarch64-softmmu, QEMULauncher)",
                      processes_scanned=len(ctx.obs.processes))
    evidence = {**q.process.describe(), "app": q.app, "helix_port": q.helix_port, "binary": q.binary,
                "config": q.config.describe() if q.config else None, "parse_error": q.error,
                **ctx.topology.judged("qemu")}
    port = f", helix-port={q.helix_port}" if q.helix_port else ""
    return passed(f"QEMU pid {q.pid} ({os.path.basename(q.binary or q.process.name)}{port})", **evidence)


@register("qemu.listener", layer="qemu", side=Side.HOST, needs=("qemu.process",),
          description="QEMU itself listens on its helix port or holds the socket")
def qemu_listener(ctx: ProbeContext) -> Outcome:
    topo = ctx.topology
    q = topo.qemu
    if q is None:
        return _no_qemu(ctx)
    tcp = [{"pid": lis.pid, "address": lis.address} for lis in ctx.obs.tcp_listeners if lis.pid == q.pid]
    holds = []
    if topo.socket_path:
        holds = [{"pid": h.pid, "listening": h.listening}
                 for h in ctx.obs.socket_holders(topo.socket_path) if h.pid == q.pid]
    evidence: dict[str, object] = {"qemu_pid": q.pid, "tcp_listening": tcp, "socket": topo.socket_path,
                                   "socket_held": holds, "topology": topo.kind}
    if topo.kind == "socat":
        if any(h["listening"] for h in holds):
            return passed(f"QEMU listens on {topo.socket_path}", **evidence)
        return failed("qemu-not-listening",
                      f"QEMU pid {q.pid} runs but does not listen on {topo.socket_path or 'its Unix socket'}",
                      **evidence)
    if q.config is not None and q.config.helix_port == 0:
        return failed("qemu-not-listening", f"QEMU pid {q.pid} has helix-port=0: its export binds port 0, so the "
                      "system gives it a random port the guest cannot know (0 does not mean the default)",
                      remedy="Start QEMU with helix-port=41937 (the Helix Mac app's port), or leave helix-port= "
                             "out for 15937; the guest's HELIX_FRAME_EXPORT_PORT must match.", **evidence)
    port = topo.listen_port
    mine = [t for t in tcp if port is None or t["address"].endswith(f":{port}")]
    if mine:
        return passed(f"QEMU listens on {mine[0]['address']}", **evidence)
    holders = [{**ctx.obs.who(lis.pid, lis.command), "address": lis.address}
               for lis in ctx.obs.listeners_on_port(port)] if port else []
    if holders:
        return _bind_failed(ctx, q, port, holders, evidence)
    want = f"port {port}" if port else "any TCP port"
    if (unknown := ctx.obs.listeners_unknown) and port:
        # The list cannot say who listens: a connect() can at least say whether anyone does.
        evidence["listeners_unknown"] = unknown
        if ctx.obs.port_accepts(port, ctx.config.timeout):
            return skipped(f"cannot tell who listens on {port} ({unknown}); 127.0.0.1:{port} accepts "
                           "connections, so something does", **evidence)
        evidence["connect"] = f"127.0.0.1:{port} refused"
    if (age := _age(q)) is not None and age < BOOT_WINDOW_S:
        evidence["qemu_age_s"] = round(age, 1)
        return failed("qemu-still-booting",
                      f"QEMU pid {q.pid} started {age:.0f} s ago and does not listen on {want} yet: the "
                      "export starts at the guest GPU driver's first command — the VM may still be booting",
                      **evidence)
    return failed("qemu-not-listening", f"QEMU pid {q.pid} runs but does not listen on {want}", **evidence)


def _age(q: QemuInstance) -> float | None:
    return time.time() - q.process.started if q.process.started else None


def _bind_failed(ctx: ProbeContext, q: QemuInstance, port: int, holders: list[dict[str, object]],
                 evidence: dict[str, object]) -> Outcome:
    """Someone else holds QEMU's port: its bind() failed at init and it runs without a listener."""
    stale = ctx.topology.stale_qemu
    evidence["port_holders"] = holders
    if stale is not None and any(h["pid"] == stale.pid for h in holders):
        evidence["stale_qemu"] = {**stale.process.describe(), "helix_port": stale.helix_port}
        return failed(
            "qemu-bind-failed",
            f"port {port} is held by an older QEMU, pid {stale.pid} (started {iso_time(stale.process.started)}), "
            f"configured for the same port: QEMU pid {q.pid} could not bind it",
            remedy=f"Stop the stale QEMU: `kill {stale.pid}` (check first with `ps -p {stale.pid} -o command=` "
                   f"that it is the old VM), then {q.restart_how()} so its QEMU binds the port.",
            **evidence)
    who = holders[0]
    return failed(
        "qemu-bind-failed",
        f"port {port} is held by pid {who['pid']} ({who['role']}: {str(who['command'])[:120]}), "
        f"not by QEMU pid {q.pid}: its bind() failed",
        remedy=f"Stop pid {who['pid']} or move it to another port (`lsof -nP -iTCP:{port}` shows it), "
               f"then {q.restart_how()} so QEMU binds the port.",
        **evidence)


@register("qemu.network", layer="qemu", side=Side.HOST, needs=("qemu.process",),
          description="the guest reaches the host's loopback as 10.0.2.2 (user-mode networking)")
def qemu_network(ctx: ProbeContext) -> Outcome:
    q = ctx.topology.qemu
    if q is None:
        return _no_qemu(ctx)
    kinds = q.config.network_kinds if q.config else ()
    evidence: dict[str, object] = {"netdev": list(q.config.option_values("netdev")) if q.config else [],
                                   "hostfwd": list(q.config.hostfwds) if q.config else []}
    if "user" in kinds:
        return passed("user-mode networking: the guest reaches 127.0.0.1 here as 10.0.2.2", **evidence)
    vmnet = [k for k in kinds if k.startswith("vmnet")]
    if not vmnet:
        return skipped(f"network backends {list(kinds) or 'none on the command line'}: not judged", **evidence)
    port = ctx.topology.listen_port
    bound = [lis.address for lis in ctx.obs.listeners_on_port(port)] if port else []
    evidence.update(port=port, listening_on=bound)
    if bound and not all(_loopback(a) for a in bound):
        return passed(f"{vmnet[0]} networking, and port {port} listens beyond loopback: the guest must dial "
                      "the bridge address (typically 192.168.64.1), not 10.0.2.2", **evidence)
    return failed("qemu-network-vmnet",
                  f"QEMU uses {vmnet[0]} networking: the guest has no 10.0.2.2 and reaches this Mac at the "
                  f"bridge address (typically 192.168.64.1), but the export listens on "
                  f"{', '.join(bound) or '127.0.0.1'} only", **evidence)


@register("qemu.outputs", layer="qemu", side=Side.HOST, needs=("qemu.process",), path=VideoPath.SCANOUT,
          description="QEMU offers 16 display outputs, one scanout per desktop (max_outputs=16)")
def qemu_outputs(ctx: ProbeContext) -> Outcome:
    q = ctx.topology.qemu
    if q is None:
        return _no_qemu(ctx)
    outputs = q.config.max_outputs if q.config else None
    evidence = {"max_outputs": outputs, "expected": SCANOUT_OUTPUTS}
    if outputs is None and (q.config is None or q.config.helix_port_raw is None):
        return skipped("no virtio-gpu max_outputs on QEMU's command line (not a scanout-path VM?)", **evidence)
    if (outputs or 1) >= SCANOUT_OUTPUTS:
        return passed(f"max_outputs={outputs}: {outputs - 1} scanouts for desktops", **evidence)
    said = f"max_outputs={outputs}" if outputs else "no max_outputs on its command line"
    summary = f"QEMU pid {q.pid} runs with {said}: at most {max((outputs or 1) - 1, 0)} desktops can have a scanout"
    # Undecided (--mode auto, nothing said which path): a VM on the request path needs no outputs.
    decided = scanout_path.decide(ctx).path == VideoPath.SCANOUT
    report = failed if (outputs or 1) <= 1 and decided else warned
    return report("scanout-outputs-missing", summary, **evidence)


def _loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host == "::1" or host.startswith("127.")


@register("qemu.binary", layer="qemu", side=Side.HOST, needs=("qemu.process",),
          description="the running binary is the one on disk, and has the helix module")
def qemu_binary(ctx: ProbeContext) -> Outcome:
    q = ctx.topology.qemu
    if q is None:
        return _no_qemu(ctx)
    binary = q.binary
    facts = ctx.obs.binary(binary) if binary else None
    if facts is None or not facts.readable:
        return skipped(f"cannot read the QEMU binary ({binary or 'unknown path'})")
    evidence: dict[str, object] = {"binary": binary, "binary_mtime": iso_time(facts.mtime),
                                   "process_started": iso_time(q.process.started)}
    if q.process.started and facts.mtime and facts.mtime > q.process.started + 1:
        return failed("qemu-binary-stale",
                      f"{binary} changed after QEMU pid {q.pid} started: the running code is the old build",
                      **evidence)
    evidence.update(helix_strings=facts.helix, version=facts.version)
    if not facts.helix:
        return failed("qemu-no-helix", f"{binary} has no [HELIX] strings: not a helix build", **evidence)
    return passed(f"binary has the helix module{f' ({facts.version})' if facts.version else ''}", **evidence)


@register("qemu.dylibs", layer="qemu", side=Side.HOST, needs=("qemu.process",),
          description="macOS: the binary's dylib paths load inside UTM's sandbox")
def qemu_dylibs(ctx: ProbeContext) -> Outcome:
    if why := ctx.obs.unsupported("dylibs"):
        return skipped(why)
    q = ctx.topology.qemu
    if q is None or not q.binary:
        return skipped("no QEMU binary")
    deps, why_not = ctx.obs.dylibs(q.binary)
    if deps is None:
        return skipped(why_not or "the dylib paths cannot be read")
    return judge_dylibs(deps)


def judge_dylibs(deps: parsers.OtoolDeps) -> Outcome:
    build = list(deps.paths_of_kind("build"))
    evidence = {"binary": deps.binary, "dependencies": len(deps.deps), "build_paths": build,
                "other_absolute": list(deps.paths_of_kind("package"))}
    if build:
        return failed("qemu-dylib-sysroot",
                      f"{len(build)} dylib path(s) point into a build tree, e.g. {build[0]}", **evidence)
    if evidence["other_absolute"]:
        # Homebrew dependencies (capstone, gnutls) are left alone by fix-qemu-paths.sh (docs/failures/qemu-dylib-sysroot.md).
        return passed("no build-tree paths; some dylibs come from a package prefix (Homebrew)", **evidence)
    return passed("every dylib path is a system or @rpath path", **evidence)


@register("qemu.log", layer="qemu", side=Side.HOST, timeout=60,
          description="QEMU's [HELIX] log: init steps reached, bind/init errors, version, encoder errors")
def qemu_log(ctx: ProbeContext) -> Outcome:
    path, source = ctx.config.qemu_log, ctx.config.source("qemu_log")
    q = ctx.topology.qemu
    if not path and q is not None and q.config is not None and q.config.utm_data_dir:
        path, source = os.path.join(q.config.utm_data_dir, UTM_DEBUG_LOG), "UTM default"
        if not ctx.obs.exists(path):
            return skipped(f"no QEMU log: UTM writes {path} only with the VM's Debug Log setting on "
                           "(VM settings → QEMU → Debug Log; then restart the VM)")
    if not path:
        if q is not None and q.app == "helix-app":
            return skipped("the Helix Mac app keeps QEMU's log only in its Logs tab (no file): copy it into "
                           "a file and pass --qemu-log FILE (or `pbpaste > qemu.log` after copying it)")
        return skipped("no QEMU log given (--qemu-log FILE: QEMU's stderr, or UTM's debug log)")
    summary = ctx.obs.qemu_log(path)
    if summary is None:
        if source in WEAK_SOURCES:
            return skipped(f"no QEMU log at {path} (the {source} path); QEMU's stderr may be the only "
                           "place its [HELIX] lines go")
        return warned("qemu-log-missing",
                      f"no such file {path} (from {source}): check the path; QEMU may never have started",
                      log=path, log_from=source)
    facts = summary.to_dict()
    facts.pop("findings", None)
    evidence = {"log": path, **facts}
    if not summary.has_helix:
        return skipped(f"{path} has no [HELIX] lines: not a helix log, or the logging went elsewhere",
                       **evidence)
    version, last = summary.version, summary.last_step
    findings = summary.findings
    decision = scanout_path.decide(ctx)
    if decision.path != VideoPath.REQUEST:
        # "A client connected and nothing was logged for it" means a vsockenc client waiting on
        # an H4 host only on the request path: a PING or an idle viewer logs nothing either.
        kept = [f for f in findings if f.failure_id != "frame-request-ignored"]
        if len(kept) < len(findings):
            evidence["not_judged"] = f"silent clients on an H4 host: not vsockenc's path here ({decision.reason})"
        findings = kept
    return from_findings(findings,
                         f"init reached '{last}'" + (f" ({version})" if version else ""), evidence)
