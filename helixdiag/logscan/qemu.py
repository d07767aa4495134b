"""The QEMU host log scanner (`_QemuScanner`) and its per-run state (`_Run`).

It reads QEMU stderr or helix-debug.log (`[HELIX]` lines, with or without the `helix: `
prefix): the init ladder (`INIT_STEPS`), version banner and host generation, listener,
clients, subscribes and frame requests. helix-debug.log is appended across QEMU runs, so
every new init starts a new `_Run`; only the last run is judged into a `QemuLogSummary`,
earlier ones are listed.
"""

from __future__ import annotations

import re
from typing import Any

from helixdiag.findings import Finding
from helixdiag.logscan.dispatch import _DISPATCH, _match
from helixdiag.logscan.scanner import _Acc, _bounded_add, _int, _Scanner, _trim
from helixdiag.logscan.signatures import (
    _BY_NAME,
    _MSG_TYPES,
    _SAMPLES,
    _STEP_INDEX,
    HOST_ERROR,
    Signature,
)
from helixdiag.logscan.summary import QemuLogSummary

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


_GEN_HINTS = {
    "qemu.h0-init": "H0", "qemu.ready-unix": "H1", "qemu.frame-request": "H1",
    "qemu.frame-request-raw": "H1", "qemu.resource0-rejected": "H1", "qemu.guest-connected": "H1–H2",
    "qemu.added-client": "H3–H4", "qemu.fcntl-failed": "H4", "qemu.control-send-failed": "H4",
    "qemu.gl-blit-setup": "H4", "qemu.gl-blit-context": "H4", "qemu.frame-request-pixels": "H2–H3",
    "qemu.subscribe": "H3–H4", "qemu.unix-bind-failed": "H1", "qemu.unix-socket-failed": "H1",
    "qemu.unix-listen-failed": "H1",
}


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
        self.host_error_codes: dict[str, int] = {}
        self.connected = self.disconnected = self.rejected = self.timeouts = 0
        self.guest_open = False
        self.slots: dict[str, dict[str, Any]] = {}  # client id -> state
        self.subscribes = 0
        self.subscribe_samples: list[dict[str, Any]] = []
        self.unknown_types: dict[str, int] = {}
        self.frame_requests = self.no_pixels = self.replies = self.encodes = self.drops = 0
        self.transfer_pending: dict[str, Any] | None = None
        self.no_subscriber_after_subscribe = 0
        self.lines = 0

    @property
    def max_step(self) -> int:
        return max((_STEP_INDEX[s] for s in self.steps), default=-1)

    def brief(self) -> dict[str, Any]:
        last = max(self.steps, key=_STEP_INDEX.__getitem__) if self.steps else None
        return {"first_line": self.first_line, "version": self.version, "last_step": last,
                "listen": self.listen, "findings": sorted(self.accs)}


class _QemuScanner(_Scanner):
    kind = "qemu"

    def __init__(self) -> None:
        super().__init__()
        self.d = _DISPATCH["qemu"]
        self.helix_lines = 0
        self.run = _Run(None)
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
        found = _match(self.d, content)
        if found is None:
            return 2 if mark is not None else 0
        sig, m = found
        if mark is None and sig.detect:  # an unprefixed host string (helix-debug.log)
            self.helix_lines += 1
            self.run.lines += 1
        self._apply(no, line, sig, m)
        return 2 if mark is not None else 1 if sig.detect else 0

    def _apply(self, no: int, line: str, sig: Signature, m: re.Match[str]) -> None:
        if sig.step == "init":
            self._maybe_new_run(no)
        run = self.run
        if sig.step is not None and sig.step not in run.steps:
            run.steps[sig.step] = no
        hint = _GEN_HINTS.get(sig.name)
        if hint and hint not in run.gen_hints:
            run.gen_hints.append(hint)
        _Scanner._apply(self, no, line, sig, m)

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
        self.run = _Run(no)

    # ---------------------------------------------------------------- handlers
    def _on_h0_init(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.placeholder = True
        self.run.init_line = no
        self.run.init_port = _int(m["port"])

    def _on_init(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.init_line = no
        self.run.init_port = _int(m["port"])

    def _on_version(self, no: int, line: str, m: re.Match[str]) -> None:
        version = m["version"].strip()[:200]
        self.run.version = version
        if version not in self.versions and len(self.versions) < _SAMPLES:
            self.versions.append(version)

    def _on_build(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.build = m["build"].strip()[:200]

    def _on_already_initialized(self, no: int, line: str, m: re.Match[str]) -> None:
        self._note("re-init", "init ran again in the same process (display reset/resize); "
                   "harmless on builds with the fix", no, line)

    def _on_ready_tcp(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.listen = {"transport": "tcp", "host": m["host"], "port": _int(m["port"]),
                           "guest_host": m["guest_host"], "guest_port": _int(m["guest_port"]),
                           "line_no": no}

    def _on_ready_unix(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.listen = {"transport": "unix", "path": m["path"], "proxy_host": m["proxy_host"],
                           "port": _int(m["port"]), "line_no": no}

    def _bind_error(self, no: int, line: str, m: re.Match[str], transport: str) -> None:
        port = _int(m.groupdict().get("port"))
        self.run.bind_errors.append({"transport": transport, "port": port,
                                     "error": m["error"][:200], "line_no": no})
        del self.run.bind_errors[:-_SAMPLES]

    def _on_tcp_bind_failed(self, no: int, line: str, m: re.Match[str]) -> None:
        self._bind_error(no, line, m, "tcp")

    def _on_unix_bind_failed(self, no: int, line: str, m: re.Match[str]) -> None:
        self._bind_error(no, line, m, "unix")

    def _init_error(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.init_errors.append({"line_no": no, "line": _trim(line),
                                     "error": (m.groupdict().get("error") or "")[:200]})
        del self.run.init_errors[:-_SAMPLES]

    _on_unix_socket_failed = _on_unix_listen_failed = _on_tcp_socket_failed = _init_error
    _on_tcp_listen_failed = _on_accept_thread_failed = _on_accept_failed = _init_error
    _on_alloc_failed = _on_alloc_failed_debug = _on_virgl_init_failed = _init_error

    def _on_guest_connected(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.connected += 1
        self.run.guest_open = True

    def _on_guest_disconnected(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.disconnected += 1
        self.run.guest_open = False

    def _on_client_connected(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.connected += 1

    def _slot(self, client: str) -> dict[str, Any]:
        slots = self.run.slots
        if client not in slots and len(slots) >= 64:
            slots.pop(next(iter(slots)))
        return slots.setdefault(client, {"open": True, "silent": True, "line_no": None})

    def _on_added_client(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.slots[m["client"]] = {"open": True, "silent": True, "line_no": no,
                                       "fd": _int(m["fd"])}
        if len(self.run.slots) > 64:
            self.run.slots.pop(next(iter(self.run.slots)))

    def _on_handler_started(self, no: int, line: str, m: re.Match[str]) -> None:
        slot = self._slot(m["client"])
        slot["open"] = True
        slot["started_line"] = no
        slot["started_text"] = _trim(line)

    def _client_activity(self, m: re.Match[str]) -> None:
        client = m.groupdict().get("client")
        if client is not None:
            self._slot(client)["silent"] = False

    def _on_subscribe(self, no: int, line: str, m: re.Match[str]) -> None:
        run = self.run
        self._client_activity(m)
        run.subscribes += 1
        if len(run.subscribe_samples) < _SAMPLES:
            run.subscribe_samples.append({"client": _int(m["client"]), "scanout": _int(m["scanout"]),
                                          "fe": m["fe"], "g_fe": m["g_fe"], "line_no": no})
        if m["fe"] != m["g_fe"]:
            acc = self._hit("stream-no-reply", no, line, _BY_NAME["qemu.subscribe"], m)
            acc.extra["double_init"] = True

    def _on_config_req(self, no: int, line: str, m: re.Match[str]) -> None:
        self._client_activity(m)

    _on_after_subscribe = _on_config_req

    def _client_gone(self, m: re.Match[str]) -> None:
        client = m.groupdict().get("client")
        if client is not None:
            self._slot(client)["open"] = False

    def _on_client_disconnected(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.disconnected += 1
        self._client_gone(m)

    def _on_removing_client(self, no: int, line: str, m: re.Match[str]) -> None:
        self._client_gone(m)

    def _on_client_invalid_magic(self, no: int, line: str, m: re.Match[str]) -> None:
        self._client_activity(m)
        self._client_gone(m)

    def _on_control_send_failed(self, no: int, line: str, m: re.Match[str]) -> None:
        self._client_activity(m)
        self._client_gone(m)

    def _on_partial_send_close(self, no: int, line: str, m: re.Match[str]) -> None:
        self._client_activity(m)
        self._client_gone(m)
        self.run.drops += 1

    def _on_partial_send(self, no: int, line: str, m: re.Match[str]) -> None:
        self._client_activity(m)
        self.run.drops += 1

    def _on_client_dropping(self, no: int, line: str, m: re.Match[str]) -> None:
        self._client_activity(m)
        self.run.drops += 1

    def _on_send_failed(self, no: int, line: str, m: re.Match[str]) -> None:
        self._client_activity(m)

    _on_send_error = _on_send_failed

    def _on_no_slots(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.rejected += 1

    def _on_recv_timeout(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.timeouts += 1

    def _on_unknown_type(self, no: int, line: str, m: re.Match[str]) -> None:
        _bounded_add(self.run.unknown_types, m["msg_type"])

    def _host_error(self, code: str) -> None:
        _bounded_add(self.run.host_error_codes, code)

    def _on_unknown_type_h1(self, no: int, line: str, m: re.Match[str]) -> None:
        _bounded_add(self.run.unknown_types, m["msg_type"])
        self._host_error("-1")

    def _on_invalid_magic_h1(self, no: int, line: str, m: re.Match[str]) -> None:
        self._host_error("-1")

    def _on_resource0_rejected(self, no: int, line: str, m: re.Match[str]) -> None:
        self._host_error("-2")

    _on_iosurface_resource_failed = _on_iosurface_encoding_failed = _on_resource0_rejected

    def _on_frame_request_pixels(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.frame_requests += 1
        if m["pixel_data"] == "NO":
            self.run.no_pixels += 1
            self._hit("stream-wrong-picture", no, line, _BY_NAME["qemu.frame-request-pixels"], m)

    def _on_frame_request(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.frame_requests += 1

    _on_frame_request_raw = _on_frame_request

    def _on_frame_sent(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.replies += 1

    def _encoder_error(self, no: int, line: str, m: re.Match[str]) -> None:
        code = m.groupdict().get("code")
        if code is not None:
            _bounded_add(self.run.encoder_errors, code)

    _on_encoding_failed = _on_vt_create_failed = _on_vt_prepare_failed = _encoder_error
    _on_cvpixelbuffer_failed = _on_vt_encode_frame_failed = _on_vt_encode_failed = _encoder_error
    _on_vt_encode_failed_h0 = _on_data_pointer_failed = _on_scanout_vt_create_failed = _encoder_error
    _on_scanout_vt_prepare_failed = _on_frame_ready_cvpixelbuffer_failed = _encoder_error

    def _on_encode(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.encodes += 1
        if m["status"] != "0":
            self._hit("encoder-error", no, line, _BY_NAME["qemu.encode"], m)
            _bounded_add(self.run.encoder_errors, m["status"])

    def _on_frame_ready_drop(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.drops += 1

    _on_frame_ready_blit_failed = _on_frame_ready_drop

    def _on_frame_ready_no_subscriber(self, no: int, line: str, m: re.Match[str]) -> None:
        if self.run.subscribes and m["active_clients"] == "0" and any(
                s["open"] for s in self.run.slots.values()):
            self.run.no_subscriber_after_subscribe += 1

    def _on_transfer_about(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.transfer_pending = {"line_no": no, "line": _trim(line)}

    def _on_transfer_completed(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.transfer_pending = None

    _on_transfer_failed = _on_transfer_completed

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
            first = _BY_NAME[acc.first_sig]
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
                msg = _BY_NAME[acc.first_sig].meaning
                msg = f"{msg}{': VideoToolbox status ' + codes if codes else ''}"
                if acc.count > 1:
                    msg += f" ({acc.count} error lines)"
                out.append(finding(fid, msg, codes=dict(run.encoder_errors)))
        if HOST_ERROR in accs:
            acc = accs[HOST_ERROR]
            codes = ", ".join(f"{c} ×{n}" for c, n in run.host_error_codes.items())
            out.append(finding(HOST_ERROR, f"the host answered requests with ERROR ({codes}): "
                               f"{_BY_NAME[acc.first_sig].meaning}",
                               codes=dict(run.host_error_codes)))
        if "stream-wrong-picture" in accs:
            acc = accs["stream-wrong-picture"]
            out.append(finding("stream-wrong-picture", f"{_BY_NAME[acc.first_sig].meaning}"
                               f"{f' ({acc.count} lines)' if acc.count > 1 else ''}"))
        if "stream-no-reply" in accs:
            acc = accs["stream-no-reply"]
            if acc.extra.get("double_init"):
                msg = ("a client subscribed to a different frame-export instance than the one "
                       "encoding (fe != g_fe): init ran twice and subscribers are invisible")
            else:
                msg = f"{acc.count} encoded replies could not be delivered: " \
                      f"{acc.fields.get('error', 'client gone')}"
            out.append(finding("stream-no-reply", msg))
        if "stream-closed" in accs:
            acc = accs["stream-closed"]
            parts = [f"{_BY_NAME[n].meaning} ×{c}" for n, c in acc.sigs.items()]
            out.append(finding("stream-closed", "the host dropped clients: " + "; ".join(parts)))
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

    def _run_notes(self, run: _Run, s: QemuLogSummary) -> None:
        if not self.helix_lines:
            self._note("no-helix", "no [HELIX] / helix: line at all: this QEMU may have no Helix "
                       "module, frame-export init has not run yet (it waits for virgl), or the "
                       "log is not QEMU's stderr (helix-debug.log is often empty)",
                       related="qemu-no-helix")
        if run.unknown_types:
            kinds = ", ".join(f"{t} ({_MSG_TYPES.get(_int(t) or -1, '?')}) ×{n}"
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
