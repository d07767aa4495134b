"""`watch`: the view to leave open while restarting the VM.

Every few seconds the cheap probes run again (everything but the encoder session, the full
stream exchange, the scanout subscription and the drm-manager's liveness probe, which writes
an ERROR line into the manager's journal each time); meanwhile a stream stays open on each hop that can carry one (the
host endpoint itself, and the guest's TCP path) and measures frames/s, latency and bytes
per frame over a sliding window. Each layer's status change, and each stream's (flowing →
closed, …), is an `Event` with a timestamp, optionally appended to a JSON-lines file. The
first observation of a layer or a stream is its initial state, not a change.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from helixdiag import net, protocol, runner
from helixdiag.client import Connection
from helixdiag.config import RunConfig
from helixdiag.frames import SyntheticSource
from helixdiag.probes import ProbeSpec
from helixdiag.protocol import ErrorMessage, FrameRequest, PixelFormat
from helixdiag.protocol.conversation import REPLY
from helixdiag.report.hops import layer_status
from helixdiag.report.model import Report
from helixdiag.results import Status
from helixdiag.timefmt import iso_time

# Not repeated: what costs time, a client slot of the host (the subscription), or a line in
# the drm-manager's journal per call (its liveness probe).
EXPENSIVE = frozenset({"encoder.session", "stream.exchange", "guest-tcp.subscribe", "drm-manager.answers"})
WINDOW_S = 5.0


def cheap_probes() -> list[ProbeSpec]:
    return [p for p in runner.select([], True) if p.id not in EXPENSIVE]


@dataclass
class Event:
    at: float
    layer: str
    before: str | None  # None: the first observation (the initial state, not a change)
    after: str
    failure_id: str | None
    summary: str
    hop: str | None = None  # a stream's state (flowing, closed, …) rather than a layer's status

    @property
    def is_change(self) -> bool:
        return self.before is not None

    def to_dict(self) -> dict[str, Any]:
        d = {"time": iso_time(self.at), "layer": self.layer,
             "from": self.before, "to": self.after, "failure_id": self.failure_id, "summary": self.summary}
        return d if self.hop is None else {**d, "hop": self.hop}


@dataclass
class LayerState:
    status: str
    since: float
    failure_id: str | None
    summary: str
    failing_s: float = 0.0


FLOWING = "flowing"
STARTING = "starting"  # connected, no frame yet: not an observation


class _Broken(Exception):
    """The stream cannot go on: a short word for the view, the detail for the change log."""

    def __init__(self, word: str, detail: str) -> None:
        super().__init__(detail)
        self.word = word


_WORDS = {"missing": "no socket", "not-a-socket": "not a socket", "path-too-long": "bad path",
          "in-use": "error", "other": "error"}


def _broken(exc: BaseException) -> _Broken:
    if isinstance(exc, _Broken):
        return exc
    if isinstance(exc, net.NetError | OSError):  # NetError: connecting; OSError: reading, writing
        err = exc if isinstance(exc, net.NetError) else net.translate(exc, "connection")
        return _Broken(_WORDS.get(err.kind, err.kind), str(err))
    word = "closed" if isinstance(exc, EOFError) else "bad reply"  # RemoteProtocolError
    return _Broken(word, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


class StreamMonitor(threading.Thread):
    """Keeps one request-mode stream open on an endpoint, at a modest rate, and measures it.
    Reconnects on failure; every wait is bounded by the run's timeout."""

    def __init__(self, name: str, endpoint: net.Endpoint, timeout: float, fps: float = 10.0,
                 size: tuple[int, int] = (320, 240)) -> None:
        super().__init__(name=f"watch-stream {name}", daemon=True)
        self.label = name
        self.endpoint = endpoint
        self.timeout = timeout
        self.period = 1.0 / fps
        self.source = SyntheticSource(size[0], size[1], PixelFormat.NV12)
        self.samples: deque[tuple[float, float, int]] = deque()  # (time, latency ms, bytes)
        self.error: str | None = None  # what broke the stream last, in full
        self.word: str | None = None  # …and in one or two words
        self.connected = False
        self.frames = 0
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                conn = Connection(self.endpoint, self.timeout)
            except net.NetError as exc:
                self._fail(_broken(exc))
                continue
            self.connected, self.error, self.word = True, None, None
            try:
                self._stream(conn)
            except (_Broken, OSError, EOFError, protocol.RemoteProtocolError) as exc:
                self._fail(_broken(exc))
            finally:
                conn.close()

    def _fail(self, broken: _Broken) -> None:
        self.connected, self.error, self.word = False, str(broken), broken.word
        self._halt.wait(min(2.0, self.timeout))

    def _stream(self, conn: Connection) -> None:
        layout = self.source.layout
        n = 0
        while not self._halt.is_set():
            t0 = time.perf_counter()
            req = FrameRequest(layout.width, layout.height, PixelFormat.NV12, layout.stride, pts=n,
                               force_keyframe=n % 30 == 0, pixels=self.source.frame(n))
            conn.send(req, time.monotonic() + self.timeout)
            try:
                event = conn.receive(self.timeout)
            except TimeoutError:
                raise _Broken("no reply", f"no reply within {self.timeout:g} s") from None
            reply = event.message
            if event.kind != REPLY:
                raise _Broken("bad reply", f"host sent {event.name}, not an answer to the frame ({event.detail})")
            if isinstance(reply, ErrorMessage):
                raise _Broken("host error", f"host answered ERROR {reply.code}: {reply.message}")
            now = time.perf_counter()
            with self._lock:
                self.samples.append((time.monotonic(), (now - t0) * 1000, len(reply.data)))
                while self.samples and self.samples[0][0] < time.monotonic() - WINDOW_S:
                    self.samples.popleft()
            n += 1
            self.frames += 1
            self._halt.wait(max(0.0, self.period - (now - t0)))

    def stats(self) -> dict[str, Any]:
        """The last WINDOW_S seconds; `state` is FLOWING, STARTING or a short word for what
        broke the stream (`closed`, `refused`, `no reply`, …), `error` the full detail."""
        with self._lock:
            recent = [s for s in self.samples if s[0] >= time.monotonic() - WINDOW_S]
        if not self.connected:
            state, error = self.word or STARTING, self.error or "connecting"
        elif not recent and self.frames:
            state, error = "stalled", f"no frame in the last {WINDOW_S:g} s"
        elif not recent:
            state, error = STARTING, "no frames yet"
        else:
            state = FLOWING
        if state != FLOWING:
            return {"hop": self.label, "endpoint": str(self.endpoint), "ok": False,
                    "state": state, "error": error, "fps": 0.0}
        span = max(recent[-1][0] - recent[0][0], 1e-3)
        lat = np.array([s[1] for s in recent])
        return {"hop": self.label, "endpoint": str(self.endpoint), "ok": True, "state": FLOWING, "error": None,
                "fps": round((len(recent) - 1) / span, 1) if len(recent) > 1 else 0.0,
                "latency_p50_ms": round(float(np.percentile(lat, 50)), 2),
                "latency_p95_ms": round(float(np.percentile(lat, 95)), 2),
                "bytes_per_frame": int(sum(s[2] for s in recent) / len(recent))}


@dataclass
class Watcher:
    config: RunConfig
    jsonl: IO[str] | None = None
    layers: dict[str, LayerState] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    monitors: dict[str, StreamMonitor] = field(default_factory=dict)
    rounds: int = 0
    started: float = field(default_factory=time.time)
    last_report: Report | None = None
    hops: dict[str, str] = field(default_factory=dict)  # stream → its last observed state
    _previous_round_at: float = 0.0

    def round(self) -> list[Event]:
        """Run the cheap probes once; return what it observed anew: the layers' and streams'
        changes (`events`) and, the first time, their initial states (not changes)."""
        report = runner.Runner(self.config, cheap_probes()).run()
        self.last_report = report
        self.rounds += 1
        now = time.time()
        if self._previous_round_at:
            for state in self.layers.values():
                if state.status == Status.FAIL:
                    state.failing_s += now - self._previous_round_at
        observed: list[Event] = []
        by_layer: dict[str, list] = {}
        for p in report.probes:
            by_layer.setdefault(p.layer, []).append(p)
        for layer, results in by_layer.items():
            status, speaker = layer_status(results)
            state = self.layers.get(layer)
            failure = speaker.failure_id if speaker else None
            summary = speaker.summary if speaker else ""
            if state is None or state.status != status or state.failure_id != failure:
                observed.append(Event(now, layer, state.status if state else None, str(status), failure, summary))
                failing_s = state.failing_s if state else 0.0
                self.layers[layer] = LayerState(str(status), now, failure, summary, failing_s)
            else:
                state.summary = summary
        for st in self.stream_stats():
            before = self.hops.get(st["hop"])
            if st["state"] not in (STARTING, before):
                observed.append(Event(now, "stream", before, st["state"], None, st["error"] or "", hop=st["hop"]))
                self.hops[st["hop"]] = st["state"]
        for event in observed:
            if event.is_change:
                self.events.append(event)
            if self.jsonl is not None:
                self.jsonl.write(json.dumps(event.to_dict()) + "\n")
                self.jsonl.flush()
        self._previous_round_at = now
        self._update_monitors(report)
        return observed

    def _update_monitors(self, report: Report) -> None:
        """One stream per hop that can carry one; follow the endpoint if it moves."""
        wanted: dict[str, net.Endpoint] = {}
        topo = report.topology or {}
        if topo.get("kind") == "socat" and topo.get("socket"):
            wanted["host endpoint"] = net.Endpoint("unix", path=topo["socket"])
        elif topo.get("listen_port"):
            wanted["host endpoint"] = net.Endpoint("tcp", host="127.0.0.1", port=topo["listen_port"])
        port = self.config.port or topo.get("listen_port")
        if self.config.side in ("guest", "both") and port:
            wanted["guest path"] = net.Endpoint("tcp", host=self.config.host, port=port)
        for name, endpoint in wanted.items():
            mon = self.monitors.get(name)
            if mon is None or mon.endpoint != endpoint:
                if mon is not None:
                    mon.stop()
                mon = StreamMonitor(name, endpoint, self.config.timeout)
                mon.start()
                self.monitors[name] = mon
        for name in list(self.monitors):
            if name not in wanted:
                self.monitors.pop(name).stop()

    def stream_stats(self) -> list[dict[str, Any]]:
        return [m.stats() for m in self.monitors.values()]

    def stop(self) -> None:
        for mon in self.monitors.values():
            mon.stop()
        for mon in self.monitors.values():
            mon.join(timeout=self.config.timeout + 1)

    def summary(self) -> dict[str, Any]:
        return {
            "duration_s": round(time.time() - self.started, 1),
            "rounds": self.rounds,
            "changes": len(self.events),
            "layers": {name: {"status": s.status, "failure_id": s.failure_id, "failing_s": round(s.failing_s, 1)}
                       for name, s in self.layers.items()},
        }
