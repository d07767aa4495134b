"""helix-drm-manager's log scanner (`_DrmScanner`): `journalctl -u helix-drm-manager`.

The daemon logs slog text to stdout, which journald prefixes (`Mon DD HH:MM:SS host
helix-drm-manager[PID]: `, or an ISO time with `-o short-iso`); the stand-in writes the bare
slog lines; mutter-lease-launcher and logind-stub (the desktop's side of a lease) log the same
way and are read where they show up. systemd restarts the daemon 5 s after it exits, so a
journal holds many runs: every `starting helix-drm-manager` starts a new `_DrmRun` and only
the last run is judged (the earlier ones are listed). The facts: where it sends ENABLE_SCANOUT
(`qemu_addr`), its socket, its connectors and pool, the leases it handed out and not yet
released, and the ERROR lines helixdiag's own liveness probe leaves (`unknown command`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from helixdiag.findings import Finding
from helixdiag.logscan.scanner import _SAMPLES, _Acc, _int
from helixdiag.logscan.slog import GoLine, _GoScanner
from helixdiag.logscan.summary import DrmLogSummary

if TYPE_CHECKING:
    from helixdiag.logscan.dispatch import Rules
    from helixdiag.logscan.signatures import Signature

DAEMONS = ("helix-drm-manager", "mutter-lease-launcher", "logind-stub")
_PORT = re.compile(r":(\d{1,5})$")

# The order findings are listed in (a cause before what it explains).
_ORDER = ("drm-manager-not-master", "drm-manager-not-running", "scanout-outputs-missing",
          "drm-manager-wrong-port", "scanout-slots-exhausted", "scanout-pool-exhausted",
          "drm-lease-failed", "scanout-not-rendered")


class _DrmRun:
    """One run of the daemon: from a `starting helix-drm-manager` to the next."""

    def __init__(self, first_line: int | None) -> None:
        self.first_line = first_line
        self.accs: dict[str, _Acc] = {}
        self.lines = 0
        self.qemu_addr: str | None = None
        self.socket: str | None = None
        self.connectors: int | None = None
        self.available_scanouts: int | None = None
        self.leases_sent = self.lease_failures = self.unknown_command_probes = 0
        self.held: dict[int, int] = {}  # scanout id -> line of its `lease FD sent to client`
        self.launcher_scanout_id: int | None = None
        self.none_available: dict[str, Any] | None = None  # `available_scanouts=0`: where

    def brief(self) -> dict[str, Any]:
        return {"first_line": self.first_line, "qemu_addr": self.qemu_addr,
                "findings": sorted(self.accs)}


class _DrmScanner(_GoScanner):
    kind = "drm"

    def __init__(self, rules: Rules) -> None:
        super().__init__(rules)
        self.run = self.state = _DrmRun(None)
        self.accs = self.run.accs  # findings belong to the current run
        self.starts = 0
        self.earlier: list[dict[str, Any]] = []

    def sure(self, go: GoLine) -> bool:
        if go.ident in DAEMONS:
            return True
        return go.ident == "systemd" and go.content.startswith("helix-drm-manager.service")

    def feed(self, no: int, line: str) -> int:
        found = super().feed(no, line)
        if found:
            self.run.lines += 1
        return found

    # ---------------------------------------------------------------- stateful handlers
    def _on_start(self, sig: Signature, no: int, line: str, m: re.Match[str]) -> None:
        """the daemon (re)started: a new run begins, with its socket and QEMU address"""
        self.starts += 1
        run = self.run
        if run.first_line is not None:  # (lines before the first start belong to this run)
            self.earlier.append(run.brief())
            del self.earlier[:-_SAMPLES]
            run = self.run = self.state = _DrmRun(no)
            self.accs = run.accs
        else:
            run.first_line = no
        attrs = self.go.attrs
        run.qemu_addr = attrs.get("qemu_addr") or None
        run.socket = attrs.get("socket") or None

    def _on_lease_sent(self, sig: Signature, no: int, line: str, m: re.Match[str]) -> None:
        """a lease was handed out: its scanout id is held until a release"""
        scanout = _int(self.go.attrs.get("scanout_idx"))
        self.run.leases_sent += 1
        if scanout is not None and (scanout in self.run.held or len(self.run.held) < 64):
            self.run.held[scanout] = no

    def _on_release(self, sig: Signature, no: int, line: str, m: re.Match[str]) -> None:
        """a lease was released: its scanout id is no longer held"""
        scanout = _int(self.go.attrs.get("scanout_idx"))
        if scanout is not None:
            self.run.held.pop(scanout, None)

    # ---------------------------------------------------------------- the end
    def finish(self) -> DrmLogSummary:
        s = DrmLogSummary()
        self._fill(s)
        run = self.run
        s.first_time, s.last_time = self.first_time, self.last_time
        s.restarts, s.earlier_runs, s.run_first_line = self.starts, list(self.earlier), run.first_line
        s.qemu_addr, s.socket = run.qemu_addr, run.socket
        m = _PORT.search(run.qemu_addr or "")
        s.qemu_port = int(m.group(1)) if m else None
        s.connectors, s.available_scanouts = run.connectors, run.available_scanouts
        s.leases_sent, s.lease_failures = run.leases_sent, run.lease_failures
        s.leases_held = sorted(run.held)
        s.unknown_command_probes = run.unknown_command_probes
        s.launcher_scanout_id = run.launcher_scanout_id
        findings = [self._judge(fid, s) for fid in _ORDER if fid in run.accs]
        none = run.none_available
        if none is not None and "scanout-outputs-missing" not in run.accs and (
                run.connectors is None or run.connectors <= 1):
            findings.insert(0, Finding("scanout-outputs-missing", "the daemon has no scanout to "
                                       "lease (available_scanouts=0) and the log does not show "
                                       "more than one connector: QEMU runs without "
                                       "max_outputs=16", {**none, "connectors": run.connectors}, 1))
        s.findings = findings
        if self.earlier:
            self._note("earlier-runs", f"{len(self.earlier)} earlier run(s) of the daemon in this "
                       f"log; only the last (from line {run.first_line}) is judged")
        s.notes = list(self.notes.values())
        return s

    def _judge(self, fid: str, s: DrmLogSummary) -> Finding:
        acc = self.run.accs[fid]
        f = acc.fields
        times = f" ({acc.count} lines)" if acc.count > 1 else ""
        err = f.get("error", "")
        if fid == "drm-manager-not-master":
            msg = (f"helix-drm-manager could not become DRM master ({err}): it exits and systemd "
                   f"restarts it every 5 s ({s.restarts} start(s) in this log)")
        elif fid == "drm-manager-not-running":
            msg = f"helix-drm-manager stopped or is unreachable: {err or self.by_name[acc.first_sig].meaning}{times}"
        elif fid == "scanout-outputs-missing":
            msg = (f"the DRM device has {s.connectors if s.connectors is not None else '?'} "
                   f"connector(s) and {s.available_scanouts if s.available_scanouts is not None else '?'} "
                   "scanout(s) to lease: QEMU runs without max_outputs=16")
        elif fid == "drm-manager-wrong-port":
            msg = (f"ENABLE_SCANOUT to {f.get('addr')} failed ({err}){times}: QEMU_ADDR "
                   f"({s.qemu_addr or '?'}) is not where the host's frame export listens")
        elif fid == "scanout-slots-exhausted":
            msg = ("the host closed the ENABLE_SCANOUT connection without an answer (read header: "
                   f"EOF){times}: it had no client slot left")
        elif fid == "scanout-pool-exhausted":
            msg = f"lease requests refused: {err or 'no scanouts available'}{times}"
        elif fid == "drm-lease-failed":
            msg = f"{self.by_name[acc.first_sig].meaning}: {err}{times}" if err else \
                f"{self.by_name[acc.first_sig].meaning}{times}"
        else:
            msg = f"{self.by_name[acc.first_sig].meaning}{times}"
        return self._finding(fid, msg, qemu_addr=s.qemu_addr) if fid == "drm-manager-wrong-port" \
            else self._finding(fid, msg)
