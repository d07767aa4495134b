"""desktop-bridge's log scanner (`_BridgeScanner`): its output as `docker logs DESKTOP` shows it.

Lines come prefixed `[desktop-bridge] ` by the container's wrapper and hold slog text, zerolog
JSON (`[SHARED_VIDEO] …`) or older printf lines (`slog.parse` takes each apart). The scanner
follows the scanout client: which id it watches and where the id came from (HELIX_SCANOUT_ID,
the launcher's id file, or a lease of its own: a connector nobody draws on), each
subscription to the host and what came of it — its first stats line (frames=1 without a
keyframe: joined mid-GOP), the reader's error and how long after the subscription it came (the
host's idle timeout), or no frame at all. A subscription followed by a new one recovered.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from helixdiag.findings import Finding
from helixdiag.logscan.gst import _magic_hint, _msg_type_name
from helixdiag.logscan.scanner import _SAMPLES, _int, _trim
from helixdiag.logscan.slog import GoLine, _GoScanner, seconds_between
from helixdiag.logscan.summary import BridgeLogSummary

if TYPE_CHECKING:
    from helixdiag.logscan.dispatch import Rules
    from helixdiag.logscan.signatures import Signature

# The hosts' read timeouts on a silent subscriber: H4 60 s, H3 600 s (seconds, with slack).
IDLE_WINDOWS = ((55.0, 65.0), (585.0, 615.0))
_ADDR_PORT = re.compile(r":(\d{1,5})$")


def _port(addr: str | None) -> int | None:
    m = _ADDR_PORT.search(addr or "")
    return int(m.group(1)) if m else None


class _BridgeScanner(_GoScanner):
    kind = "bridge"

    def __init__(self, rules: Rules) -> None:
        super().__init__(rules)
        # the effects' state (the scanner itself); finish() copies it into the summary
        self.video_mode: str | None = None
        self.scanout_id: int | None = None
        self.scanout_id_source: str | None = None
        self.qemu_port: int | None = None
        self.monitor_connector: str | None = None
        self.pipeline: str | None = None
        self.start_failures = self.frames_dropped = self.gops = 0
        self.subscribed_scanout: int | None = None
        self.subscriptions = 0
        self.frames: int | None = None
        self.sub: dict[str, Any] | None = None  # the latest subscription
        self.errors: list[dict[str, Any]] = []  # reader errors, each with its subscription

    def sure(self, go: GoLine) -> bool:
        return go.bridge or (go.json and go.message.startswith("[SHARED_VIDEO]"))

    # ---------------------------------------------------------------- stateful handlers
    def _on_subscribed(self, sig: Signature, no: int, line: str, m: re.Match[str]) -> None:
        """a subscription to the host: its scanout id and port; an earlier reader error is
        recovered from"""
        attrs = self.go.attrs
        self.subscriptions += 1
        self.subscribed_scanout = _int(attrs.get("scanout_id"))
        port = _port(attrs.get("qemu_addr"))
        if port is not None:
            self.qemu_port = port
        for err in self.errors:
            err["recovered"] = True
        self.sub = {"line_no": no, "time": self.go.time, "stamp": self.go.stamp,
                    "line": _trim(line), "stats": False, "error": False}

    def _on_stats(self, sig: Signature, no: int, line: str, m: re.Match[str]) -> None:
        """a stats line: the largest frame count; a subscription's first one with frames=1
        and keyframe=false proves scanout-mid-gop"""
        attrs = self.go.attrs
        frames = _int(attrs.get("frames"))
        if frames is not None:
            self.frames = max(self.frames or 0, frames)
        sub = self.sub
        if sub is None:  # the log starts after the subscription
            sub = self.sub = {"line_no": None, "time": None, "stamp": None, "line": None,
                              "stats": False, "error": False}
        if not sub["stats"] and frames == 1 and attrs.get("keyframe", "").lower() == "false":
            acc = self._hit("scanout-mid-gop", no, line, sig, m)
            acc.extra.setdefault("subscribed_line_no", sub["line_no"])
        sub["stats"] = True

    def _on_read_error(self, sig: Signature, no: int, line: str, m: re.Match[str]) -> None:
        """the scanout reader stopped: judged at the end, by the time since its subscription
        (the host's idle timeout) and whether a new subscription followed"""
        sub = self.sub
        since = seconds_between(sub["time"], self.go.time) if sub else None
        if sub is not None:
            sub["error"] = True
        if len(self.errors) >= _SAMPLES:
            self.errors.pop(0)
        self.errors.append({"line_no": no, "line": _trim(line), "sig": sig, "m": m,
                            "err": self.go.attrs.get("err", ""), "since": since,
                            "stamp": self.go.stamp, "cause": None if sig.when else sig.failure_id,
                            "subscribed_line_no": sub["line_no"] if sub else None,
                            "recovered": False})

    # ---------------------------------------------------------------- the end
    def finish(self) -> BridgeLogSummary:
        s = BridgeLogSummary()
        self._fill(s)
        s.first_time, s.last_time = self.first_time, self.last_time
        for name in ("video_mode", "scanout_id", "scanout_id_source", "subscribed_scanout",
                     "qemu_port", "monitor_connector", "frames", "subscriptions",
                     "start_failures", "frames_dropped", "gops", "pipeline"):
            setattr(s, name, getattr(self, name))
        s.read_errors = len(self.errors)
        self._judge_errors()
        findings = [self._judge(fid) for fid in (
            "scanout-not-rendered", "bridge-wrong-port", "stream-connect-failed",
            "stream-bad-magic", "stream-protocol-error", "scanout-idle-drop",
            "scanout-connection-lost", "scanout-mid-gop") if fid in self.accs]
        self._not_rendered(findings)
        sub = self.sub
        if sub is not None and sub["line_no"] is not None and not sub["stats"] and not sub["error"]:
            findings.append(Finding(
                "scanout-no-frames",
                f"subscribed to scanout {s.subscribed_scanout} (line {sub['line_no']}) and no "
                "'scanout stream stats' line followed: no frame arrived. Inconclusive on its own: "
                "the picture may be static (move something on the desktop and re-run), or the "
                "host captures nothing (read its log)",
                {"line_no": sub["line_no"], "line": sub["line"], "subscribed_at": sub["stamp"],
                 "last_time": self.last_time}, 1, level="warn"))
        s.findings = findings
        s.notes = list(self.notes.values())
        return s

    def _judge_errors(self) -> None:
        for err in self.errors:
            if err["cause"]:  # a protocol error proved its own id
                continue
            since = err["since"]
            idle = "EOF" in err["err"] and since is not None and any(
                lo <= since <= hi for lo, hi in IDLE_WINDOWS)
            if idle:
                acc = self._hit("scanout-idle-drop", err["line_no"], err["line"], err["sig"], err["m"])
                acc.extra.setdefault("seconds_after_subscribe", since)
                acc.extra.setdefault("subscribed_line_no", err["subscribed_line_no"])
            elif not err["recovered"]:
                acc = self._hit("scanout-connection-lost", err["line_no"], err["line"], err["sig"],
                                err["m"])
                acc.extra.setdefault("seconds_after_subscribe", since)
            else:
                self._note("reader-recovered", "the scanout reader stopped on an error and a new "
                           "subscription followed (a viewer reconnected)", err["line_no"],
                           err["line"], related="scanout-connection-lost")

    def _judge(self, fid: str) -> Finding:
        acc = self.accs[fid]
        times = f" ({acc.count} lines)" if acc.count > 1 else ""
        f = acc.fields
        if fid == "scanout-not-rendered":
            msg = (f"desktop-bridge leased a connector of its own (scanout {self.scanout_id}): it "
                   "found neither HELIX_SCANOUT_ID nor the launcher's helix-scanout-id file, so it "
                   "watches a scanout nobody draws on")
        elif fid == "bridge-wrong-port":
            msg = (f"desktop-bridge could not connect to the host at {f.get('addr')}: "
                   f"{f.get('error', 'refused')}{times}; HELIX_FRAME_EXPORT_PORT is not the port "
                   "the host's frame export listens on")
        elif fid == "stream-connect-failed":
            msg = f"desktop-bridge could not connect to the host at {f.get('addr')}: {f.get('error')}{times}"
        elif fid == "stream-bad-magic":
            msg = ("the scanout reader got a reply that is not HXFR: bad magic "
                   f"{_magic_hint(f.get('magic', '?'))}{times}")
        elif fid == "stream-protocol-error":
            t = f.get("msg_type")
            msg = f"the scanout reader got a message of the wrong type: {t} ({_msg_type_name(t, 16)}){times}"
        elif fid == "scanout-idle-drop":
            since = acc.extra.get("seconds_after_subscribe")
            msg = (f"the host closed the subscription {since:g} s after it began (read header: EOF): "
                   f"its read timeout drops a subscriber that sends nothing{times}")
        elif fid == "scanout-connection-lost":
            msg = (f"the scanout reader stopped ({acc.fields.get('error') or 'read error'}) and no "
                   f"new subscription followed: viewers keep a frozen picture{times}")
        else:  # scanout-mid-gop
            msg = ("the first frame after subscribing was not a keyframe (frames=1 keyframe=false): "
                   "the viewer stays black until the host's next keyframe")
        return self._finding(fid, msg)

    def _not_rendered(self, findings: list[Finding]) -> None:
        """The monitor connector the input side found must be Virtual-(id+1) of the
        subscribed scanout."""
        sub, mon = self.subscribed_scanout, self.monitor_connector
        if sub is None or not mon or mon == f"Virtual-{sub + 1}":
            return
        evidence = {"monitor_connector": mon, "subscribed_scanout": sub,
                    "expected_connector": f"Virtual-{sub + 1}"}
        for f in findings:
            if f.failure_id == "scanout-not-rendered":
                f.evidence.update(evidence)
                return
        number = _int(mon.rsplit("-", 1)[-1])
        drawn = f" (scanout {number - 1})" if number else ""
        findings.insert(0, Finding(
            "scanout-not-rendered",
            f"desktop-bridge subscribed to scanout {sub}, but the desktop's active monitor is "
            f"{mon}{drawn}: it watches a scanout nobody draws on", evidence, 1))
