"""The QEMU host log scanner (`_QemuScanner`), its per-run state (`_Run`) and effect kinds.

It reads QEMU stderr or helix-debug.log (`[HELIX]` lines, with or without the `helix: `
prefix): the init ladder (`INIT_STEPS`), version banner and host generation, listener,
clients, subscribes and frame requests. helix-debug.log is appended across QEMU runs, so
every new init starts a new `_Run`; only the last run is judged into a `QemuLogSummary`,
earlier ones are listed. The effects write the current run (`state`); the QEMU effect kinds
(init, listening, bind and init errors, client activity, generation hints) and the few
stateful handlers (version, client slots, subscribe, requests, encodes) are defined here.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from helixdiag.findings import Finding
from helixdiag.logscan.gst import HOST_ERROR, _msg_type_name
from helixdiag.logscan.scanner import (
    _SAMPLES,
    _STEP_INDEX,
    Effect,
    _Acc,
    _bounded_add,
    _int,
    _Scanner,
    _trim,
)
from helixdiag.logscan.summary import QemuLogSummary

if TYPE_CHECKING:
    from helixdiag.logscan.dispatch import Rules
    from helixdiag.logscan.signatures import Signature

# ════════════════════════════════════════════════════════════════════ QEMU host log


_QEMU_MARK = re.compile(r"helix: |\[(?:HELIX|FRAME_READY|ENCODE\]|GPU_BLIT\]|GL_BLIT\]|KEEPALIVE\])")


_DATE = re.compile(r"(20\d\d)-(\d\d)-(\d\d)")


def _generation_from_version(version: str) -> str | None:
    m = _DATE.search(version)
    if not m:
        return None
    date = m.group(0)
    if date >= "2026-02-10":
        return "H4"
    if date >= "2026-02-07":
        return "H3"
    if date >= "2026-02-06":
        return "H2"
    return None


# ── the QEMU effect kinds (constructors for the table; implementations in the class) ──


def init_at(placeholder: bool = False) -> Effect:
    """Frame-export init ran here (its port; `placeholder`: the H0 module, nothing listens)."""
    return Effect("init_at", value=placeholder,
                  label="init (placeholder: nothing listens)" if placeholder else "init")


def listen(transport: str) -> Effect:
    """The listener is up: `listen` = the transport and the line's groups (ports as numbers)."""
    return Effect("listen", "listen", value=transport, label=f"listening ({transport})")


def bind_error(transport: str) -> Effect:
    """The listener could not bind: keep the port and error (the last few)."""
    return Effect("bind_error", "bind_errors", value=transport, label=f"bind error ({transport})")


def gen_hint(generation: str | None = None) -> Effect:
    """This line dates the host: its generation (default: the row's `gen`) is a hint."""
    return Effect("gen_hint", "gen_hints", value=generation,
                  label=f"dates the host ({generation})" if generation else "dates the host")


INIT_ERROR = Effect("init_error", "init_errors", label="init error")  # keep the line and error
CLIENT_ACTIVE = Effect("client_active", label="client active")  # the line's client is not silent
CLIENT_GONE = Effect("client_gone", label="client gone")


class _Run:
    """One QEMU process's lines (helix-debug.log is appended across runs)."""

    def __init__(self, first_line: int | None) -> None:
        self.first_line = first_line
        self.accs: dict[str, _Acc] = {}
        self.steps: dict[str, int] = {}
        self.init_line: int | None = None
        self.placeholder = False
        self.version: str | None = None
        self.build: str | None = None
        self.gen_hints: list[str] = []
        self.init_port: int | None = None
        self.listen: dict[str, Any] | None = None
        self.bind_errors: list[dict[str, Any]] = []
        self.init_errors: list[dict[str, Any]] = []
        self.encoder_errors: dict[str, int] = {}
        self.host_errors: dict[str, int] = {}
        self.host_error_text: dict[str, str] = {}  # (host_error with a text group)
        self.connected = self.disconnected = self.rejected = self.timeouts = 0
        self.guest_open = False
        self.slots: dict[str, dict[str, Any]] = {}  # client id -> state
        self.subscribes = 0
        self.subscribe_samples: list[dict[str, Any]] = []
        self.unknown_types: dict[str, int] = {}
        self.frame_requests = self.no_pixels = self.replies = self.encodes = self.drops = 0
        self.transfer_pending: dict[str, Any] | None = None
        self.no_subscriber_after_subscribe = 0
        self.captured = self.captured_unencoded = self.frames_encoded = 0
        self.encode_errors = self.keepalives = 0
        self.last_captured: dict[str, Any] | None = None
        self.lines = 0

    @property
    def max_step(self) -> int:
        return max((_STEP_INDEX[s] for s in self.steps), default=-1)

    def brief(self) -> dict[str, Any]:
        last = max(self.steps, key=_STEP_INDEX.__getitem__) if self.steps else None
        return {"first_line": self.first_line, "version": self.version, "last_step": last,
                "listen": self.listen, "findings": sorted(self.accs)}


_PORTS = ("port", "guest_port")  # listen: the groups that are numbers


class _QemuScanner(_Scanner):
    kind = "qemu"

    def __init__(self, rules: Rules) -> None:
        super().__init__(rules)
        self.d = rules.dispatch
        self.helix_lines = 0
        self.run = self.state = _Run(None)
        self.runs = 0
        self.earlier: list[dict[str, Any]] = []
        self.versions: list[str] = []

    # findings and notes belong to the current run
    def _hit(self, failure_id: str, no: int, line: str, sig: Signature,
             m: re.Match[str] | None) -> _Acc:
        acc = self.run.accs.get(failure_id)
        if acc is None:
            acc = self.run.accs[failure_id] = _Acc()
        acc.add(no, line, sig, m)
        return acc

    def feed(self, no: int, line: str) -> int:
        self.lines += 1
        try:
            line = self._clean(line)
            return self._feed(no, line)
        except Exception:  # noqa: BLE001 - one odd line must not end the scan
            self.internal_errors += 1
            return 0

    def _feed(self, no: int, line: str) -> int:
        mark = _QEMU_MARK.search(line)
        if mark is not None:
            content = line[mark.start():].rstrip()
            if content.startswith("helix: "):
                content = content[7:]
            self.helix_lines += 1
            self.run.lines += 1
        else:
            content = line.strip()
            if not content:
                return 0
        found = self.d.match(content)
        if found is None:
            return 2 if mark is not None else 0
        sig, m = found
        if mark is None and sig.detect:  # an unprefixed host string (helix-debug.log)
            self.helix_lines += 1
            self.run.lines += 1
        self._apply(no, line, sig, m)
        return 2 if mark is not None else 1 if sig.detect else 0

    def _reach(self, step: str, no: int, line: str, m: re.Match[str]) -> None:
        """The `step` column: this line proves the run got to `step` (an init starts a new run)."""
        if step == "init":
            self._maybe_new_run(no)
        if step not in self.run.steps:
            self.run.steps[step] = no

    def _maybe_new_run(self, no: int) -> None:
        run = self.run
        if run.init_line is None and run.max_step < _STEP_INDEX["listening"] and not run.accs:
            run.first_line = run.first_line or no
            return
        if run.lines or run.steps:
            self.runs += 1
            self.earlier.append(run.brief())
            if len(self.earlier) > _SAMPLES:
                del self.earlier[0]
        self.run = self.state = _Run(no)

    def _slot(self, client: str) -> dict[str, Any]:
        slots = self.run.slots
        if client not in slots and len(slots) >= 64:
            slots.pop(next(iter(slots)))
        return slots.setdefault(client, {"open": True, "silent": True, "line_no": None})

    # ---------------------------------------------------------------- effect kinds
    def _fx_init_at(self, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
        if e.value:
            self.run.placeholder = True
        self.run.init_line = no
        self.run.init_port = _int(m["port"])

    def _fx_listen(self, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
        self.run.listen = {"transport": e.value, **{k: _int(v) if k in _PORTS else v
                                                    for k, v in m.groupdict().items()},
                           "line_no": no}

    def _fx_bind_error(self, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
        port = _int(m.groupdict().get("port"))
        self.run.bind_errors.append({"transport": e.value, "port": port,
                                     "error": m["error"][:200], "line_no": no})
        del self.run.bind_errors[:-_SAMPLES]

    def _fx_init_error(self, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
        self.run.init_errors.append({"line_no": no, "line": _trim(line),
                                     "error": (m.groupdict().get("error") or "")[:200]})
        del self.run.init_errors[:-_SAMPLES]

    def _fx_gen_hint(self, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
        if e.value not in self.run.gen_hints:
            self.run.gen_hints.append(e.value)

    def _fx_client_active(self, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
        client = m.groupdict().get("client")
        if client is not None:
            self._slot(client)["silent"] = False

    def _fx_client_gone(self, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
        client = m.groupdict().get("client")
        if client is not None:
            self._slot(client)["open"] = False

    EFFECTS = {**_Scanner.EFFECTS, "init_at": _fx_init_at, "listen": _fx_listen,
               "bind_error": _fx_bind_error, "init_error": _fx_init_error,
               "gen_hint": _fx_gen_hint, "client_active": _fx_client_active,
               "client_gone": _fx_client_gone}

    # ---------------------------------------------------------------- stateful handlers
    def _on_version(self, sig: Signature, no: int, line: str, m: re.Match[str]) -> None:
        """the run's VERSION banner (also listed across runs)"""
        version = m["version"].strip()[:200]
        self.run.version = version
        if version not in self.versions and len(self.versions) < _SAMPLES:
            self.versions.append(version)

    def _on_added_client(self, sig: Signature, no: int, line: str, m: re.Match[str]) -> None:
        """a client slot is taken: the client is open and silent until it sends something"""
        self.run.slots[m["client"]] = {"open": True, "silent": True, "line_no": no,
                                       "fd": _int(m["fd"])}
        if len(self.run.slots) > 64:
            self.run.slots.pop(next(iter(self.run.slots)))

    def _on_handler_started(self, sig: Signature, no: int, line: str, m: re.Match[str]) -> None:
        """the client's handler thread runs: remember where (a silent client is judged later)"""
        slot = self._slot(m["client"])
        slot["open"] = True
        slot["started_line"] = no
        slot["started_text"] = _trim(line)

    def _on_subscribe(self, sig: Signature, no: int, line: str, m: re.Match[str]) -> None:
        """a SUBSCRIBE: counted and sampled; fe != g_fe proves scanout-no-frames (double init)"""
        run = self.run
        run.subscribes += 1
        if len(run.subscribe_samples) < _SAMPLES:
            run.subscribe_samples.append({"client": _int(m["client"]), "scanout": _int(m["scanout"]),
                                          "fe": m["fe"], "g_fe": m["g_fe"], "line_no": no})
        if m["fe"] != m["g_fe"]:
            self._hit("scanout-no-frames", no, line, sig, m).extra["double_init"] = True

    def _on_frame_request_pixels(self, sig: Signature, no: int, line: str,
                                 m: re.Match[str]) -> None:
        """pixel_data=NO proves stream-wrong-picture (the request is not the guest's picture)"""
        if m["pixel_data"] == "NO":
            self.run.no_pixels += 1
            self._hit("stream-wrong-picture", no, line, sig, m)

    def _on_encode(self, sig: Signature, no: int, line: str, m: re.Match[str]) -> None:
        """a non-zero encode status proves encoder-error and scanout-no-frames (and is counted
        as its code); status 0: the largest frame number encoded is kept"""
        run = self.run
        if m["status"] != "0":
            self._hit("encoder-error", no, line, sig, m)
            self._hit("scanout-no-frames", no, line, sig, m)
            _bounded_add(run.encoder_errors, m["status"])
            run.encode_errors += 1
        else:
            run.frames_encoded = max(run.frames_encoded, _int(m["frame"]) or 0)

    def _on_frame_ready_no_subscriber(self, sig: Signature, no: int, line: str,
                                      m: re.Match[str]) -> None:
        """a page flip found no subscriber while a subscribed client is still open: the
        subscription is invisible to the frame path (double init), scanout-no-frames"""
        if self.run.subscribes and m["active_clients"] == "0" and any(
                s["open"] for s in self.run.slots.values()):
            self.run.no_subscriber_after_subscribe += 1
            self._hit("scanout-no-frames", no, line, sig, m).extra["double_init"] = True

    # ---------------------------------------------------------------- the end
    def finish(self) -> QemuLogSummary:
        s = QemuLogSummary()
        self._fill(s)
        run = self.run
        s.helix_lines = self.helix_lines
        s.runs = self.runs + (1 if (run.lines or run.steps or run.accs) else 0)
        s.earlier_runs = list(self.earlier)
        s.run_first_line = run.first_line
        s.steps = dict(run.steps)
        s.last_step = max(run.steps, key=_STEP_INDEX.__getitem__) if run.steps else None
        s.placeholder = run.placeholder
        s.version, s.build, s.versions_seen = run.version, run.build, list(self.versions)
        s.generation = self._generation(run)
        s.init_port, s.listen = run.init_port, run.listen
        s.bind_errors, s.init_errors = list(run.bind_errors), list(run.init_errors)
        s.encoder_errors = dict(run.encoder_errors)
        s.clients_connected, s.clients_disconnected = run.connected, run.disconnected
        s.clients_rejected, s.recv_timeouts = run.rejected, run.timeouts
        s.clients_open_at_end = sum(1 for v in run.slots.values() if v["open"]) + run.guest_open
        s.subscribes, s.subscribe_samples = run.subscribes, list(run.subscribe_samples)
        s.unknown_message_types = dict(run.unknown_types)
        s.frame_requests, s.requests_without_pixels = run.frame_requests, run.no_pixels
        s.replies_sent, s.encodes, s.frames_dropped = run.replies, run.encodes, run.drops
        s.frames_captured, s.frames_encoded = run.captured, run.frames_encoded
        s.encode_errors, s.keepalives = run.encode_errors, run.keepalives
        s.findings = self._findings(run, s)
        self._run_notes(run, s)
        s.notes = list(self.notes.values())
        return s

    def _generation(self, run: _Run) -> str | None:
        if run.placeholder:
            return "H0"
        gen = _generation_from_version(run.version) if run.version else None
        if gen:
            return gen
        if run.build and "TCP listener" in run.build:
            return "H2"
        for g in ("H4", "H3–H4", "H2–H3", "H1", "H1–H2"):  # most specific first
            if g in run.gen_hints:
                return g
        if run.build and "Multi-client" in run.build:
            return "H3–H4"
        return None

    def _findings(self, run: _Run, s: QemuLogSummary) -> list[Finding]:
        out: list[Finding] = []
        accs = run.accs

        def finding(fid: str, message: str, **ev: Any) -> Finding:
            acc = accs.get(fid)
            if acc is None:
                return Finding(fid, message, ev, 1)
            return Finding(fid, message, acc.evidence(**ev), acc.count)

        if run.placeholder and run.listen is None:
            out.append(finding("qemu-not-listening", "H0 placeholder module: 'Helix frame export "
                               f"initialized on vsock port {run.init_port}' and nothing listens "
                               "(the listener is a TODO in that build)", port=run.init_port))
        if "qemu-bind-failed" in accs:
            b = run.bind_errors[0] if run.bind_errors else {}
            where = f"port {b.get('port')}" if b.get("port") is not None else \
                "its Unix socket (helix-frame-export.sock in QEMU's working directory)"
            msg = f"QEMU could not bind {where}: {b.get('error', '?')}; init returned without a listener"
            earlier = [r for r in self.earlier if r.get("listen") and r["listen"].get("port") ==
                       b.get("port") and b.get("port") is not None]
            if earlier:
                msg += ("; an earlier init in this log listened on that port (a previous QEMU still "
                        "holding it, or a second init in the same process)")
            out.append(finding("qemu-bind-failed", msg, port=b.get("port"),
                               transport=b.get("transport"), error=b.get("error")))
        if "qemu-init-failed" in accs:
            acc = accs["qemu-init-failed"]
            first = self.by_name[acc.first_sig]
            err = run.init_errors[0]["error"] if run.init_errors else ""
            msg = f"{first.meaning}" + (f": {err}" if err else "")
            if acc.count > 1:
                msg += f" ({acc.count} lines)"
            out.append(finding("qemu-init-failed", msg))
        elif run.init_line is not None and not run.placeholder and run.listen is None \
                and "qemu-bind-failed" not in accs:
            last = s.last_step or "init"
            out.append(Finding("qemu-init-failed",
                               f"init started (line {run.init_line}, port {run.init_port}) but "
                               f"never reached 'Frame export ready'; last step: {last}; no "
                               "error was logged",
                               {"line_no": run.init_line, "init_port": run.init_port,
                                "last_step": last, "steps": list(s.steps_reached)}, 1))
        for fid in ("encoder-unavailable", "encoder-error"):
            if fid in accs:
                acc = accs[fid]
                codes = ", ".join(f"{c} ×{n}" for c, n in run.encoder_errors.items())
                msg = self.by_name[acc.first_sig].meaning
                msg = f"{msg}{': VideoToolbox status ' + codes if codes else ''}"
                if acc.count > 1:
                    msg += f" ({acc.count} error lines)"
                out.append(finding(fid, msg, codes=dict(run.encoder_errors)))
        if HOST_ERROR in accs:
            acc = accs[HOST_ERROR]
            codes = ", ".join(f"{c} ×{n}" for c, n in run.host_errors.items())
            out.append(finding(HOST_ERROR, f"the host answered requests with ERROR ({codes}): "
                               f"{self.by_name[acc.first_sig].meaning}",
                               codes=dict(run.host_errors)))
        if "stream-wrong-picture" in accs:
            acc = accs["stream-wrong-picture"]
            out.append(finding("stream-wrong-picture", f"{self.by_name[acc.first_sig].meaning}"
                               f"{f' ({acc.count} lines)' if acc.count > 1 else ''}"))
        if "stream-no-reply" in accs:
            acc = accs["stream-no-reply"]
            out.append(finding("stream-no-reply", f"{acc.count} encoded replies could not be delivered: "
                               f"{acc.fields.get('error', 'client gone')}"))
        no_frames = self._no_frames(run, finding)
        if no_frames is not None:
            out.append(no_frames)
        if "stream-closed" in accs:
            acc = accs["stream-closed"]
            parts = [f"{self.by_name[n].meaning} ×{c}" for n, c in acc.sigs.items()]
            out.append(finding("stream-closed", "the host dropped clients: " + "; ".join(parts)))
        if run.timeouts and run.subscribes:  # a subscriber sends nothing after SUBSCRIBE
            out.append(finding("scanout-idle-drop", f"the host dropped {run.timeouts} idle client(s) in a run "
                               f"with {run.subscribes} subscription(s): a subscriber sends nothing after "
                               "SUBSCRIBE, so the host's read timeout ends its stream",
                               recv_timeouts=run.timeouts, subscribes=run.subscribes))
        if "scanout-slots-exhausted" in accs:
            acc = accs["scanout-slots-exhausted"]
            out.append(finding("scanout-slots-exhausted", f"the host turned away {acc.count} "
                               "client(s): 'No client slots available' (all 16 slots in use)",
                               rejected=run.rejected))
        if "scanout-connection-lost" in accs:
            acc = accs["scanout-connection-lost"]
            parts = [f"{self.by_name[n].meaning} ×{c}" for n, c in acc.sigs.items()]
            out.append(finding("scanout-connection-lost", "the host broke subscribers' "
                               "connections: " + "; ".join(parts)))
        silent = [(cid, v) for cid, v in run.slots.items()
                  if v["silent"] and v["open"] and v.get("started_line")]
        if s.generation == "H4" and silent:
            cid, v = silent[0]
            out.append(Finding(
                "frame-request-ignored",
                f"H4 host ({run.version or 'build dated 2026-02-10 or later'}): client {cid} "
                "connected and its handler started, then nothing was logged for it. H4 skips "
                "FRAME_REQUEST silently, so a vsockenc client waits forever",
                {"line_no": v["started_line"], "line": v["started_text"], "client": cid,
                 "silent_clients": [c for c, _ in silent][:_SAMPLES], "version": run.version},
                len(silent)))
        return out

    def _no_frames(self, run: _Run, finding: Any) -> Finding | None:
        """scanout-no-frames from the host's side: an error on the capture/encode path, a
        subscription the frame path cannot see, or frames captured and never encoded."""
        unencoded = run.captured_unencoded >= 2 or (run.captured_unencoded >= 1 and not run.encodes)
        acc = run.accs.get("scanout-no-frames")
        if acc is None and not unencoded:
            return None
        why: list[str] = []
        if acc is not None:
            if acc.extra.get("double_init"):
                why.append("a subscription the frame path cannot see (NO_SUBSCRIBER while a client "
                           "is subscribed, or fe != g_fe: the export initialised twice)")
            other = [self.by_name[n].meaning for n in acc.sigs
                     if n not in ("qemu.frame-ready-no-subscriber", "qemu.subscribe")]
            why += other[:3]
        extra: dict[str, Any] = {}
        if unencoded:
            last = run.last_captured or {}
            why.append(f"{run.captured_unencoded} capture line(s) with no [ENCODE] line after them: "
                       "frames captured and never encoded")
            extra = {"captured_unencoded": run.captured_unencoded,
                     "last_captured_line_no": last.get("line_no"),
                     "last_captured_line": last.get("line")}
            if acc is None:
                extra = {"line_no": last.get("line_no"), "line": last.get("line"), **extra}
        return finding("scanout-no-frames", "the host shows why subscribers get no frame: "
                       + "; ".join(why), **extra)

    def _run_notes(self, run: _Run, s: QemuLogSummary) -> None:
        if not self.helix_lines:
            self._note("no-helix", "no [HELIX] / helix: line at all: this QEMU may have no Helix "
                       "module, frame-export init has not run yet (it waits for virgl), or the "
                       "log is not QEMU's stderr (helix-debug.log is often empty)",
                       related="qemu-no-helix")
        if run.unknown_types:
            kinds = ", ".join(f"{t} ({_msg_type_name(t)}) ×{n}"
                              for t, n in run.unknown_types.items())
            hint = ""
            if "48" in run.unknown_types:
                hint = "; SUBSCRIBE on a host without scanout support (H2): use request mode"
            self._note("unknown-types", f"the host skipped messages of unknown type: {kinds}{hint}")
        if run.transfer_pending is not None:
            self._note("transfer-hang", "the last readback 'About to call "
                       "virgl_renderer_transfer_read_iov' never COMPLETED: QEMU crashed or hung "
                       "in the transfer", run.transfer_pending["line_no"],
                       run.transfer_pending["line"])
        if run.no_subscriber_after_subscribe:
            self._note("no-subscriber", f"{run.no_subscriber_after_subscribe} page flips found "
                       "no subscriber while a subscribed client was connected",
                       related="stream-no-reply")
        if run.timeouts:
            self._note("recv-timeouts", f"{run.timeouts} idle clients were disconnected by the "
                       "host's receive timeout; vsockenc then fails its next write",
                       related="vsockenc-peer-closed")
        if self.runs:
            self._note("earlier-runs", f"{self.runs} earlier QEMU run(s) in this log; only the "
                       f"last (from line {run.first_line}) is judged")
