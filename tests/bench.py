"""`make bench`: the figures of docs/benchmarks.md, every one measured in this one run.

    python tests/bench.py --out docs/benchmarks.md [--quick] [--json PATH]

Not a pytest module (no `test_` prefix): it takes minutes and its figures depend on the
machine. Each figure is a ratio against a limit measured in the same run on the same
frames, with the absolute figures beside it:

1. request-mode throughput: `send` → a real `helixdiag serve` subprocess over TCP
   loopback, one request in flight (like vsockenc), divided by the bare libx264 encoder
   (raw PyAV, the settings of `helixdiag.encoders.x264`, the same frames, in this process);
2. latency per frame minus the bare encode time of the same frame;
3. scanout push to 1, 4 and 16 subscribers, and with one subscriber stalled;
4. `run --all` wall time on the healthy self-test stack, on nothing, on a hung host;
5. `serve` peak RSS with 16 clients streaming 1080p, and a 4 GiB header;
6. the tap's cost: 1080p NV12 request mode through `helixdiag tap` ÷ straight to the same
   serve, same frames, interleaved rounds (socat in the same spot for comparison).

Everything talks to 127.0.0.1 only, and every wait is bounded (sockets, subprocesses, an
overall alarm). With py-spy installed in the venv (`pip install py-spy`, profiling only)
the serve process is profiled during a 1080p exchange.

Before/after: the server of BASELINE_REV (the last commit before the hot-path work,
extracted read-only with `git archive`) runs as a second serve subprocess and takes its
turn in every request-mode round, so both come from the same minutes of this noisy
machine (skipped with --no-baseline, or when git or the commit is not there).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import glob
import json
import os
import platform
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import psutil
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

from helixdiag import net, protocol, runner, selftest
from helixdiag.client import ExchangeOptions, exchange
from helixdiag.config import RunConfig
from helixdiag.encoders.x264 import X264Encoder
from helixdiag.frames import SyntheticSource
from helixdiag.protocol import PixelFormat

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"  # the only address this script ever talks to
KEYFRAME_INTERVAL = 60  # what `send` asks for (ExchangeOptions default)
PRERENDERED = 120  # distinct frames per configuration (then they repeat)
OVERALL_LIMIT_S = 1800
# The last commit before the hot-path work (reused payload buffer, MSG_WAITALL payload
# reads): its server is measured beside this tree's so "before → after" comes from one run.
BASELINE_REV = "b027b30"


class BenchTimeout(Exception):
    pass


def _log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


# --------------------------------------------------------------------------- the serve process


class ServeProcess:
    """`helixdiag serve` as a subprocess on 127.0.0.1:<free port>, stopped on exit."""

    def __init__(self, *args: str, src: str | None = None, unix: str | None = None) -> None:
        argv = [sys.executable, "-m", "helixdiag", "serve", "--tcp", f"{LOOPBACK}:0",
                "--encoder", "x264", *args]
        if unix:
            argv += ["--unix", unix]
        env = {**os.environ, "NO_COLOR": "1"}
        if src:
            env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env,
                                     # `python -m` puts the cwd first on sys.path: run a
                                     # baseline tree from inside it, or REPO's package wins.
                                     cwd=src or str(REPO),
                                     start_new_session=True)
        self.lines: list[str] = []
        self.endpoint = self._wait_listening(timeout=30.0)
        threading.Thread(target=self._drain, daemon=True).start()
        self.ps = psutil.Process(self.proc.pid)

    def _wait_listening(self, timeout: float) -> net.Endpoint:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        pending = ""
        try:
            while time.monotonic() < deadline:
                if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    break
                chunk = os.read(fd, 65536).decode(errors="replace")
                if not chunk:
                    break
                pending += chunk
                *complete, pending = pending.split("\n")
                for line in complete:
                    self.lines.append(line.rstrip())
                    m = re.match(r"listening tcp://([\d.]+):(\d+)", line)
                    if m:
                        if m[1] != LOOPBACK:
                            raise RuntimeError(f"serve listens on {m[1]}, not loopback")
                        return net.Endpoint("tcp", host=m[1], port=int(m[2]))
        finally:
            sel.close()
        self.stop()
        raise RuntimeError("serve did not start listening:\n" + "\n".join(self.lines[-20:]))

    def _drain(self) -> None:
        fd = self.proc.stdout.fileno()
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(fd, 65536):
                self.lines += chunk.decode(errors="replace").splitlines()
                del self.lines[:-200]

    def status(self, key: str) -> int:
        """A /proc/PID/status figure in bytes (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- frames and the bare encoder


class Prerendered(SyntheticSource):
    """SyntheticSource frames rendered once, replayed: frame(n) is frame(n % count). Both
    the client and the bare encoder read these very buffers, and making pictures is not
    counted as serving them (a guest's frames come from PipeWire at no cost to the host)."""

    def __init__(self, width: int, height: int, fmt: PixelFormat, count: int) -> None:
        super().__init__(width, height, fmt)
        self._frames = [SyntheticSource.frame(self, i) for i in range(count)]

    def frame(self, n: int) -> bytearray:
        return self._frames[n % len(self._frames)]


class BareEncoder:
    """libx264 through PyAV with exactly the options and threads of X264Encoder, fed NV12
    straight from the buffer (no copy, no conversion, no Annex-B rewriting) — the limit.
    For BGRx input the same swscale conversion the server uses comes first."""

    def __init__(self, width: int, height: int, fmt: PixelFormat) -> None:
        ref = X264Encoder(width, height)  # the settings under test, read off the real class
        self.settings = {**ref.options, "threads": ref.threads, "thread_type": ref.thread_type,
                         "bitrate": ref.bitrate, "gop": ref.gop, "fps": ref.fps}
        ref.close()
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "nv12"
        ctx.time_base = Fraction(1, ref.fps)
        ctx.framerate = Fraction(ref.fps, 1)
        ctx.bit_rate, ctx.gop_size, ctx.max_b_frames = ref.bitrate, ref.gop, 0
        ctx.thread_count, ctx.thread_type = ref.threads, ref.thread_type
        ctx.options = dict(ref.options)
        ctx.open()
        self.ctx, self.width, self.height, self.format = ctx, width, height, fmt
        self.reformatter = VideoReformatter()
        self.n = 0

    def encode(self, buf, force_key: bool) -> int:
        w, h = self.width, self.height
        arr = np.frombuffer(buf, np.uint8)
        if self.format == PixelFormat.NV12:
            frame = av.VideoFrame.from_numpy_buffer(arr.reshape(h * 3 // 2, w), format="nv12", width=w)
        else:
            src = av.VideoFrame.from_numpy_buffer(arr.reshape(h, w, 4), format="bgra")
            frame = self.reformatter.reformat(src, format="nv12")
        frame.pts = self.n
        self.n += 1
        if force_key:
            frame.pict_type = PictureType.I
        packets = self.ctx.encode(frame)
        if len(packets) != 1:
            raise RuntimeError(f"bare encoder gave {len(packets)} packets for one frame")
        return packets[0].size


def bare_pass(source: Prerendered, frames: int) -> tuple[float, list[float]]:
    """frames/s and per-frame ms of the bare encoder over frames 0..frames-1 (the encoder is
    opened before the clock starts; the same keyframes as `send` forces)."""
    enc = BareEncoder(source.width, source.height, source.format)
    times = []
    for i in range(frames):
        buf = source.frame(i)
        t0 = time.perf_counter()
        enc.encode(buf, force_key=i % KEYFRAME_INTERVAL == 0)
        times.append((time.perf_counter() - t0) * 1000)
    return frames / (sum(times) / 1000), times


def serve_pass(endpoint: net.Endpoint, source: Prerendered, frames: int) -> tuple[float, list[float], dict]:
    res = exchange(ExchangeOptions(
        endpoint=endpoint, mode="request", frames=frames, size=(source.width, source.height),
        format=source.format, keyframe_interval=KEYFRAME_INTERVAL, timeout=10.0, connect_timeout=5.0,
        decode=False, source=source,
    ))
    if res.frames_received != frames or res.status == "fail":
        raise RuntimeError(f"exchange failed: {res.frames_received}/{frames} frames, "
                           f"findings {[f.to_dict() for f in res.findings.values()]}")
    return res.fps, list(res.latencies_ms), {"elapsed_s": res.elapsed_s, "status": res.status,
                                             "bytes_received": res.bytes_received}


# --------------------------------------------------------------------------- loopback transfer cost

_SINK = r"""
import socket, sys
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(1); ls.settimeout(30)
print(ls.getsockname()[1], flush=True)
c, _ = ls.accept(); c.settimeout(30)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
    c.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
n, reply = int(sys.argv[1]), b"r" * int(sys.argv[2])
buf = memoryview(bytearray(n))
while True:
    got = 0
    while got < n:
        k = c.recv_into(buf[got:])
        if not k:
            sys.exit(0)
        got += k
    c.sendall(reply)
"""


def transfer_ms(nbytes: int, reply: int, rounds: int) -> float:
    """Median round trip of one request of `nbytes` and a `reply`-byte answer over TCP
    loopback between two processes (sockets tuned like helixdiag.net.tune)."""
    proc = subprocess.Popen([sys.executable, "-c", _SINK, str(nbytes), str(reply)],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        port = int(proc.stdout.readline())
        sock = net.connect(net.Endpoint("tcp", host=LOOPBACK, port=port), 5.0)
        sock.settimeout(10)
        payload = bytearray(os.urandom(min(nbytes, 1 << 20))) * (nbytes // min(nbytes, 1 << 20) + 1)
        payload = memoryview(payload)[:nbytes]
        rbuf = memoryview(bytearray(reply))
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            sock.sendall(payload)
            got = 0
            while got < reply:
                got += sock.recv_into(rbuf[got:])
            times.append((time.perf_counter() - t0) * 1000)
        sock.close()
        return statistics.median(times)
    finally:
        with contextlib.suppress(Exception):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


# --------------------------------------------------------------------------- the read path alone

_SENDER = r"""
import os, socket, sys
port, n, size, reply = map(int, sys.argv[1:5])
s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
    s.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
frames = [bytes.fromhex(sys.argv[5]) + os.urandom(size) for _ in range(8)]
buf = memoryview(bytearray(reply))
for i in range(n):
    s.sendall(frames[i % 8])
    got = 0
    while got < reply:
        got += s.recv_into(buf[got:])
"""


def read_path(frames: int, reuse: bool, size: int = 1920 * 1080 * 3 // 2) -> dict:
    """The server's receive loop on its own (socket set up like ClientSession's, the same
    Decoder options), against a sender process sending one 1080p NV12 FRAME_REQUEST at a
    time: CPU of the receiving thread and wall time per frame, with a fresh payload buffer
    per frame (before) and the reused one (after). No encoder: the part the change touches."""
    from helixdiag.server import ClientSession

    head = protocol.encode_parts(protocol.FrameRequest(1920, 1080, PixelFormat.NV12, 1920,
                                                       pixels=bytes(size)))[0]
    ls = socket.socket()
    ls.bind((LOOPBACK, 0))
    ls.listen(1)
    ls.settimeout(10)
    proc = subprocess.Popen([sys.executable, "-c", _SENDER, str(ls.getsockname()[1]), str(frames),
                             str(size), "16384", bytes(head).hex()], start_new_session=True)
    try:
        conn, _ = ls.accept()
        net.tune(conn)
        conn.settimeout(ClientSession.POLL)
        dec = protocol.Decoder(accept=protocol.GUEST_TO_HOST, skip_unknown=True, reuse_pixels=reuse)
        reply, done, recvs = bytes(16384), 0, 0
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        while done < frames:
            n = conn.recv_into(dec.buffer())
            if not n:
                raise RuntimeError("sender closed early")
            recvs += 1
            dec.commit(n)
            while (msg := dec.next_message()) is not protocol.NEED_DATA:
                if isinstance(msg, protocol.FrameRequest):
                    done += 1
                    conn.sendall(reply)
        cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
        conn.close()
    finally:
        ls.close()
        with contextlib.suppress(Exception):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    return {"reuse": reuse, "cpu_ms": round(cpu / frames * 1000, 3),
            "wall_ms": round(wall / frames * 1000, 3), "recvs_per_frame": round(recvs / frames, 1)}


def alloc_ms(size: int, repeats: int = 40) -> float:
    """What the old decoder paid per frame before the first byte could land: a fresh
    zero-filled bytearray of the payload size (median, in a worker thread like a session)."""
    times: list[float] = []

    def run() -> None:
        for _ in range(repeats):
            t0 = time.perf_counter()
            buf = bytearray(size)
            times.append((time.perf_counter() - t0) * 1000)
            del buf

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=60)
    return round(statistics.median(times), 3) if times else float("nan")


def bench_read_path(quick: bool) -> list[dict]:
    frames = 150 if quick else 400
    variants = [False, True]
    runs: dict[bool, list[dict]] = {v: [] for v in variants}
    for r in range(3 if quick else 6):
        for v in variants if r % 2 == 0 else list(reversed(variants)):
            runs[v].append(read_path(frames, v))
    out = []
    for v in variants:
        rows = runs[v]
        out.append({"reuse": v,
                    "cpu_ms": round(statistics.median(x["cpu_ms"] for x in rows), 3),
                    "wall_ms": round(statistics.median(x["wall_ms"] for x in rows), 3),
                    "recvs_per_frame": round(statistics.median(x["recvs_per_frame"] for x in rows), 1)})
        _log(f"read path reuse={v}: {out[-1]}")
    return out


# --------------------------------------------------------------------------- 1 + 2: request mode


@dataclass
class ServeRuns:
    """One server's passes over a configuration, each paired with the bare pass of its round."""

    serve_fps: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    overhead_ms: list[float] = field(default_factory=list)
    reply_bytes: int = 0

    def add(self, fps: float, bare_fps: float, lat_ms: list[float], bare_ms: list[float]) -> None:
        self.serve_fps.append(fps)
        self.ratios.append(fps / bare_fps)
        self.latency_ms += lat_ms
        self.overhead_ms += [a - b for a, b in zip(lat_ms, bare_ms, strict=True)]

    def summary(self) -> dict:
        return {
            "serve_fps": round(statistics.median(self.serve_fps), 1),
            "ratio": round(statistics.median(self.ratios), 3),
            "ratio_min": round(min(self.ratios), 3), "ratio_max": round(max(self.ratios), 3),
            "latency_ms": {f"p{q}": round(pct(self.latency_ms, q), 2) for q in (50, 95, 99)},
            "overhead_ms": {f"p{q}": round(pct(self.overhead_ms, q), 2) for q in (50, 95, 99)},
        }


@dataclass
class RequestFigures:
    name: str
    width: int
    height: int
    format: str
    frames_per_round: int
    rounds: int
    bare_fps: list[float] = field(default_factory=list)
    bare_ms: list[float] = field(default_factory=list)
    runs: dict[str, ServeRuns] = field(default_factory=dict)
    wire_bytes: int = 0
    transfer_ms: float = 0.0
    settings: dict = field(default_factory=dict)

    def summary(self) -> dict:
        bare = statistics.median(self.bare_fps)
        ceiling = (1000 / bare) / (1000 / bare + self.transfer_ms) if self.transfer_ms else None
        after = self.runs["after"]
        out = {
            "name": self.name, "size": f"{self.width}x{self.height}", "format": self.format,
            "frames": self.frames_per_round * self.rounds, "rounds": self.rounds,
            "bare_fps": round(bare, 1),
            "ceiling": round(ceiling, 3) if ceiling else None,
            "transfer_ms": round(self.transfer_ms, 3), "request_bytes": self.wire_bytes,
            "reply_bytes": after.reply_bytes,
            "bare_ms": {f"p{q}": round(pct(self.bare_ms, q), 2) for q in (50, 95, 99)},
            **after.summary(),
        }
        if "before" in self.runs:
            out["before"] = self.runs["before"].summary()
        return out


REQUEST_CONFIGS = [
    ("1080p NV12", 1920, 1080, PixelFormat.NV12),
    ("720p NV12", 1280, 720, PixelFormat.NV12),
    ("540p NV12", 960, 540, PixelFormat.NV12),
    ("1080p BGRx", 1920, 1080, PixelFormat.BGRA8888),
]


def bench_request(servers: dict[str, ServeProcess], quick: bool) -> list[RequestFigures]:
    """`servers`: "after" (this tree) and optionally "before" (the pre-optimisation tree),
    measured in the same rounds against the same bare pass."""
    out = []
    for name, w, h, fmt in REQUEST_CONFIGS:
        frames = 120 if quick else 300
        rounds = 1 if quick else (5 if name == "1080p NV12" else 3)
        _log(f"request mode {name}: rendering {PRERENDERED} frames")
        source = Prerendered(w, h, fmt, min(PRERENDERED, frames))
        fig = RequestFigures(name, w, h, fmt.name, frames, rounds)
        fig.settings = BareEncoder(w, h, fmt).settings
        bare_pass(source, 10)  # warm up every side (page cache, libx264 tables)
        for label, serve in servers.items():
            serve_pass(serve.endpoint, source, 10)
            fig.runs[label] = ServeRuns()
        for r in range(rounds):
            # Interleaved rounds on a noisy machine: each ratio pairs passes seconds apart.
            bare_fps, bare_ms = bare_pass(source, frames)
            fig.bare_fps.append(bare_fps)
            fig.bare_ms += bare_ms
            line = f"  round {r + 1}/{rounds}: bare {bare_fps:.1f} fps"
            order = list(servers.items())
            if r % 2:
                order.reverse()  # neither server always runs right after the bare pass
            for label, serve in order:
                fps, lat_ms, info = serve_pass(serve.endpoint, source, frames)
                fig.runs[label].add(fps, bare_fps, lat_ms, bare_ms)
                fig.runs[label].reply_bytes = info["bytes_received"] // frames
                line += f"; {label} {fps:.1f} fps = {fps / bare_fps:.3f}, latency p50 {pct(lat_ms, 50):.2f} ms"
            _log(line)
        fig.wire_bytes = protocol.HEADER_SIZE + protocol.FRAME_REQUEST_BODY + source.layout.size
        reply = max(fig.runs["after"].reply_bytes, 64)
        fig.transfer_ms = transfer_ms(fig.wire_bytes, reply, 60 if quick else 150)
        out.append(fig)
        del source
    return out


def paired(base_src: str, quick: bool) -> list[dict]:
    """Before vs after, frame by frame: each frame goes to both servers over two open
    connections, in alternating order, and the latency difference is taken per frame — the
    machine's noise hits both sides of every pair alike. Half the frames run with the new
    server started first, half with the old one first: the first-started of two serve
    processes measured ~0.2 ms slower per frame here whichever code it ran."""
    from helixdiag.client import Connection

    out = []
    for name, w, h, fmt in (REQUEST_CONFIGS[0], REQUEST_CONFIGS[3]):
        frames = 100 if quick else 300  # per start order
        _log(f"before/after paired, {name}: 2 x {frames} frames to each server")
        source = Prerendered(w, h, fmt, min(PRERENDERED, frames))
        diffs: list[float] = []
        lat: dict[str, list[float]] = {"after": [], "before": []}
        cpu: dict[str, float] = {"after": 0.0, "before": 0.0}
        for labels in (["after", "before"], ["before", "after"]):
            with contextlib.ExitStack() as stack:
                servers = {k: stack.enter_context(ServeProcess(src=base_src if k == "before" else None))
                           for k in labels}
                conns = {k: stack.enter_context(contextlib.closing(Connection(servers[k].endpoint, 5.0)))
                         for k in labels}
                cpu0 = {k: servers[k].cpu_seconds() for k in labels}
                one: dict[str, list[float]] = {k: [] for k in labels}
                for i in range(frames + 10):  # the first 10 open the encoders: not counted
                    req = protocol.FrameRequest(w, h, fmt, source.layout.stride, pts=i * 16_666_667,
                                                duration=16_666_667,
                                                force_keyframe=i % KEYFRAME_INTERVAL == 0,
                                                pixels=source.frame(i))
                    for k in labels if i % 2 == 0 else labels[::-1]:
                        t0 = time.perf_counter()
                        conns[k].send(req, time.monotonic() + 10)
                        reply = conns[k].receive(10.0).message
                        if i >= 10:
                            one[k].append((time.perf_counter() - t0) * 1000)
                        if not isinstance(reply, protocol.FrameResponse):
                            raise RuntimeError(f"{k}: {type(reply).__name__} instead of FRAME_RESPONSE")
                for k in labels:
                    cpu[k] += (servers[k].cpu_seconds() - cpu0[k]) / (frames + 10) * 1000 / 2
                    lat[k] += one[k]
                diffs += [a - b for a, b in zip(one["after"], one["before"], strict=True)]
        out.append({"name": name, "frames": 2 * frames,
                    "before_p50": round(pct(lat["before"], 50), 3), "after_p50": round(pct(lat["after"], 50), 3),
                    "diff_p50": round(pct(diffs, 50), 3), "diff_mean": round(float(np.mean(diffs)), 3),
                    "cpu_before_ms": round(cpu["before"], 2), "cpu_after_ms": round(cpu["after"], 2)})
        _log(f"  {out[-1]}")
    return out


def baseline_tree(rev: str, dest: str) -> str | None:
    """The helixdiag package as of `rev`, extracted with `git archive` (read-only) into
    `dest`; None when git or the commit is not available (e.g. a shallow clone)."""
    import io
    import tarfile

    try:
        raw = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", rev, "helixdiag"],
                             capture_output=True, timeout=60, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            tar.extractall(dest, filter="data")
    except (OSError, subprocess.SubprocessError, tarfile.TarError) as exc:
        _log(f"no baseline tree for {rev}: {exc}")
        return None
    return dest


# --------------------------------------------------------------------------- 3: scanout push


def _subscribers(endpoint: net.Endpoint, count: int, seconds: float) -> list:
    results: list = [None] * count

    def one(i: int) -> None:
        results[i] = exchange(ExchangeOptions(endpoint=endpoint, mode="scanout", frames=None,
                                              duration=seconds, timeout=5.0, connect_timeout=5.0,
                                              decode=False, scanout_id=1))

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 30)
    return [r for r in results if r is not None]


def _steady_fps(result, skip_s: float = 1.0) -> float:
    """Frames/s after the first `skip_s` seconds (subscribe, first keyframe)."""
    arrivals = np.cumsum(result.latencies_ms) / 1000
    tail = arrivals[arrivals >= skip_s]
    if len(tail) < 2:
        return 0.0
    return (len(tail) - 1) / (tail[-1] - tail[0])


def _server_send_queue(server_port: int, client_port: int) -> int:
    """tx_queue of the server's socket towards one client, from /proc/net/tcp."""
    want_local = f"0100007F:{server_port:04X}"
    want_remote = f"0100007F:{client_port:04X}"
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            parts = line.split()
            if parts[1] == want_local and parts[2] == want_remote:
                return int(parts[4].split(":")[0], 16)
    return -1


def bench_scanout(quick: bool, src: str | None) -> dict:
    seconds = 4.0 if quick else 8.0
    out: dict = {"seconds": seconds, "counts": []}
    with ServeProcess("--size", "1920x1080", "--fps", "60", src=src) as serve:
        for count in (1, 4, 16):
            _log(f"scanout: {count} subscriber(s) for {seconds:g} s")
            cpu0, wall0 = serve.cpu_seconds(), time.monotonic()
            me0 = sum(psutil.Process().cpu_times()[:2])
            results = _subscribers(serve.endpoint, count, seconds)
            wall = time.monotonic() - wall0
            cpu = (serve.cpu_seconds() - cpu0) / wall
            me = (sum(psutil.Process().cpu_times()[:2]) - me0) / wall
            fps = [_steady_fps(r) for r in results]
            out["counts"].append({
                "subscribers": count, "completed": len(results),
                "fps_min": round(min(fps), 1) if fps else 0.0,
                "fps_median": round(statistics.median(fps), 1) if fps else 0.0,
                "fps_max": round(max(fps), 1) if fps else 0.0,
                "status": sorted({r.status for r in results}),
                "serve_cpu_cores": round(cpu, 2), "clients_cpu_cores": round(me, 2),
                "gap_p99_ms": round(max(pct(r.latencies_ms[5:], 99) for r in results), 1) if results else None,
            })
            time.sleep(0.5)  # the producer stops when the last subscriber leaves
        out["stall"] = _stall(serve, seconds, quick)
    return out


def _stall(serve: ServeProcess, seconds: float, quick: bool) -> dict:
    """A subscriber that never reads, plus 4 that do: do the 4 keep their rate?"""
    _log("scanout: 1 stalled subscriber + 4 live ones")
    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # small window
    stalled.settimeout(5)
    stalled.connect((LOOPBACK, serve.endpoint.port))
    stalled.sendall(protocol.encode(protocol.Subscribe(1)))
    client_port = stalled.getsockname()[1]
    # Wait until the server's socket buffer towards it is full (its writer then blocks and
    # the producer drops its frames); /proc/net/tcp shows the server's send queue.
    t0 = time.monotonic()
    last, flat_since, queued = -1, time.monotonic(), 0
    while time.monotonic() - t0 < (25 if quick else 40):
        queued = _server_send_queue(serve.endpoint.port, client_port)
        if queued != last:
            last, flat_since = queued, time.monotonic()
        elif queued > 0 and time.monotonic() - flat_since >= 1.5:
            break
        time.sleep(0.25)
    fill_s = time.monotonic() - t0
    results = _subscribers(serve.endpoint, 4, seconds)
    fps = [_steady_fps(r) for r in results]
    pushed = max((r.frames_received for r in results), default=0)
    # What was waiting for the stalled one: its receive queue plus the server's send queue.
    waiting = _server_send_queue(serve.endpoint.port, client_port)
    with contextlib.suppress(OSError):
        import fcntl
        import termios

        waiting += int.from_bytes(fcntl.ioctl(stalled.fileno(), termios.FIONREAD, b"\0" * 4), "little")
    stalled.close()
    return {
        "fill_s": round(fill_s, 1), "server_send_queue_bytes": queued,
        "fps_min": round(min(fps), 1) if fps else 0.0,
        "fps_median": round(statistics.median(fps), 1) if fps else 0.0,
        "status": sorted({r.status for r in results}),
        "frames_pushed_to_live": pushed, "stalled_waiting_bytes": waiting,
    }


# --------------------------------------------------------------------------- 4: run --all


def _time_run(cfg: RunConfig) -> tuple[float, dict]:
    t0 = time.monotonic()
    report = runner.Runner(cfg, runner.select([], True)).run()
    elapsed = time.monotonic() - t0
    root = report.diagnosis.root_cause
    slow = sorted(report.probes, key=lambda p: -p.duration_ms)[:3]
    return elapsed, {"status": report.diagnosis.status, "root_cause": root.failure_id if root else None,
                     "slowest": [f"{p.id} {p.duration_ms} ms ({p.status})" for p in slow]}


def bench_run_all(quick: bool) -> dict:
    repeats = 1 if quick else 3
    out: dict = {}
    for label, scenario in (("healthy", None), ("hung", "stream-no-reply")):
        times, info = [], {}
        for _ in range(repeats):
            _log(f"run --all: {label} self-test stack")
            stack, cfg = selftest.build(scenario)
            with stack:
                selftest.loopback_only(cfg)
                elapsed, info = _time_run(cfg)
            times.append(elapsed)
        out[label] = {"times_s": [round(t, 3) for t in times], "timeout_s": cfg.timeout, **info}
    times = []
    for _ in range(repeats):
        _log("run --all: nothing running")
        with tempfile.TemporaryDirectory(prefix="hxd-bench-", dir="/tmp") as tmp:
            cfg = RunConfig(side="both", host=LOOPBACK, port=selftest.free_port(),
                            socket=os.path.join(tmp, "helix-frame-export.sock"), timeout=1.0, deadline=20.0)
            elapsed, info = _time_run(cfg)
        times.append(elapsed)
    out["empty"] = {"times_s": [round(t, 3) for t in times], "timeout_s": cfg.timeout, **info}
    return out


# --------------------------------------------------------------------------- 5: memory


def _huge_header(endpoint: net.Endpoint) -> dict:
    """FRAME_REQUEST with PIXEL_DATA announcing 0xFFFFFFFF payload bytes (4 GiB - 1)."""
    header = protocol.HEADER.pack(protocol.MAGIC, protocol.MsgType.FRAME_REQUEST,
                                  protocol.FLAG_PIXEL_DATA, 1, 0xFFFFFFFF)
    sock = net.connect(endpoint, 5.0)
    sock.settimeout(5.0)
    t0 = time.perf_counter()
    sock.sendall(header + bytes(44))
    dec = protocol.Decoder(accept=protocol.HOST_TO_GUEST)
    reply, closed = None, False
    with contextlib.suppress(OSError):
        while True:
            data = sock.recv(65536)
            if not data:
                closed = True
                break
            dec.feed(data)
            msg = dec.next_message()
            if msg is not protocol.NEED_DATA:
                reply = msg
    sock.close()
    return {"reply": f"ERROR {reply.code}: {reply.message}" if isinstance(reply, protocol.ErrorMessage)
            else type(reply).__name__, "closed": closed, "answer_ms": round((time.perf_counter() - t0) * 1000, 1)}


def bench_memory(quick: bool, src: str | None) -> dict:
    seconds = 4.0 if quick else 8.0
    source = Prerendered(1920, 1080, PixelFormat.NV12, 30)
    with ServeProcess(src=src) as serve:
        time.sleep(0.5)
        idle_rss = serve.status("VmRSS")
        _log("memory: a header announcing 4 GiB")
        huge = _huge_header(serve.endpoint)
        time.sleep(0.2)
        huge.update(rss_before=idle_rss, rss_after=serve.status("VmRSS"), hwm_after=serve.status("VmHWM"))
        _log(f"memory: 16 clients streaming 1080p NV12 for {seconds:g} s")
        results: list = [None] * 16

        def one(i: int) -> None:
            results[i] = exchange(ExchangeOptions(
                endpoint=serve.endpoint, frames=None, duration=seconds, size=(1920, 1080),
                format=PixelFormat.NV12, timeout=30.0, connect_timeout=10.0, decode=False, source=source))

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(16)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + seconds + 120
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        hwm = serve.status("VmHWM")
        done = [r for r in results if r is not None]
        return {
            "idle_rss": idle_rss, "peak_rss": hwm, "per_client": (hwm - idle_rss) / 16,
            "clients_ok": sum(1 for r in done if r.frames_received > 0 and r.status != "fail"),
            "frames_total": sum(r.frames_received for r in done),
            "fps_per_client": round(statistics.median(r.fps for r in done), 2) if done else 0.0,
            "huge_header": huge,
        }


# --------------------------------------------------------------------------- profile


def find_py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def bench_profile(quick: bool, src: str | None = None) -> dict | None:
    """py-spy (wall clock, --idle) on the serve process during a 1080p NV12 exchange:
    where the client thread's time goes."""
    spy = find_py_spy()
    if spy is None:
        return None
    seconds = 3.0 if quick else 6.0
    source = Prerendered(1920, 1080, PixelFormat.NV12, 60)
    with ServeProcess(src=src) as serve, tempfile.TemporaryDirectory(prefix="hxd-spy-") as tmp:
        _log(f"profile: py-spy on serve for {seconds:g} s")
        serve_pass(serve.endpoint, source, 10)
        raw = os.path.join(tmp, "spy.txt")
        rec = subprocess.Popen([spy, "record", "--pid", str(serve.proc.pid), "--idle", "--threads",
                                "--rate", "250", "--format", "raw", "--output", raw,
                                "--duration", str(int(seconds + 1)), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        res = exchange(ExchangeOptions(endpoint=serve.endpoint, frames=None, duration=seconds,
                                       decode=False, source=source, timeout=10.0))
        try:
            _, err = rec.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            rec.kill()
            _, err = rec.communicate(timeout=10)
        if not os.path.exists(raw):
            return {"error": (err or "py-spy wrote nothing").strip()[-300:]}
        return {"fps": round(res.fps, 1), "seconds": seconds, **summarise_spy(Path(raw).read_text())}


_SPY_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    m = _SPY_FRAME.match(frame)
    if not m:
        return frame
    file = m["file"]
    file = file[file.find("helixdiag/"):] if "helixdiag/" in file else os.path.basename(file)
    return f"{m['func']} ({file}:{m['line']})" if m["line"] else f"{m['func']} ({file})"


def summarise_spy(text: str) -> dict:
    per_line: collections.Counter = collections.Counter()
    categories: collections.Counter = collections.Counter()
    total = 0
    for row in text.splitlines():
        stack, _, count = row.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if "hxfr-client" not in frames[0]:
            continue
        n = int(count)
        total += n
        per_line[_short(frames[-1])] += n
        joined = ";".join(frames)
        if "send_parts" in joined:
            cat = "send the reply (sendmsg)"
        elif "recv_into" in frames[-1] or frames[-1].startswith("ClientSession._read_loop"):
            cat = "recv_into: wait for the next request + copy it in"
        elif "normalize_access_unit" in joined or "split_nals" in joined:
            cat = "Annex-B rewrite of the packet"
        elif "convert" in joined or "_nv12_frame" in joined or "_buffer_array" in joined:
            cat = "wrap the pixels for PyAV (convert.py)"
        elif "PyAVEncoder.encode" in frames[-1]:
            cat = "libx264 encode (native, GIL released)"
        elif "protocol.py" in joined:
            cat = "HXFR decode/encode (protocol.py)"
        else:
            cat = "other Python"
        categories[cat] += n
    return {
        "samples": total,
        "categories": [(k, round(v / total * 100, 1)) for k, v in categories.most_common()] if total else [],
        "top_lines": [(k, round(v / total * 100, 1)) for k, v in per_line.most_common(10)] if total else [],
    }


# --------------------------------------------------------------------------- 6: the tap's cost


class TapProcess(ServeProcess):
    """`helixdiag tap --listen tcp://127.0.0.1:0 --to SERVE` as a subprocess, its log read from
    a pipe as it comes (a person's terminal would show every line); counts the message lines."""

    def __init__(self, to: net.Endpoint) -> None:
        argv = [sys.executable, "-m", "helixdiag", "tap", "--listen", f"tcp://{LOOPBACK}:0", "--to", str(to)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env={**os.environ, "NO_COLOR": "1"},
                                     cwd=str(REPO), start_new_session=True)
        self.lines: list[str] = []
        self.message_lines = 0
        self.endpoint = self._wait_listening(timeout=30.0)
        threading.Thread(target=self._drain, daemon=True).start()
        self.ps = psutil.Process(self.proc.pid)

    def _drain(self) -> None:
        fd = self.proc.stdout.fileno()
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(fd, 65536):
                text = chunk.decode(errors="replace")
                self.message_lines += text.count(" G→H #") + text.count(" H→G #")
                self.lines = (self.lines + text.splitlines())[-200:]


class SocatRelay:
    """socat between the same two points, tuned like a careful user would (nodelay both
    ways, 1 MiB buffer): what a plain user-space relay costs, for comparison."""

    def __init__(self, to: net.Endpoint) -> None:
        probe = socket.socket()
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
        probe.close()
        self.proc = subprocess.Popen(
            ["socat", "-b", "1048576", f"TCP-LISTEN:{port},bind={LOOPBACK},reuseaddr,fork,nodelay",
             f"TCP:{to.host}:{to.port},nodelay"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        self.endpoint = net.Endpoint("tcp", host=LOOPBACK, port=port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
                return  # (socat serves this probe connection too, and lets it go)
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("socat did not start listening")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)


def bench_tap(quick: bool) -> dict:
    """1080p NV12 request mode through `helixdiag tap` ÷ straight to the same serve, same
    frames, interleaved round by round (and socat in the same spot, when installed)."""
    frames = 120 if quick else 300
    rounds = 3 if quick else 7
    _log(f"tap: rendering {min(PRERENDERED, frames)} frames")
    source = Prerendered(1920, 1080, PixelFormat.NV12, min(PRERENDERED, frames))
    out: dict = {"frames": frames, "rounds": rounds, "direct_fps": [], "tap_fps": [], "socat_fps": [],
                 "tap_cpu_ms": [], "direct_latency_ms": [], "tap_latency_ms": []}
    with contextlib.ExitStack() as stack:
        serve = stack.enter_context(ServeProcess())
        tap = stack.enter_context(TapProcess(serve.endpoint))
        socat = SocatRelay(serve.endpoint) if shutil.which("socat") else None
        if socat:
            stack.callback(socat.stop)
        paths = {"direct": serve.endpoint, "tap": tap.endpoint, **({"socat": socat.endpoint} if socat else {})}
        for ep in paths.values():
            serve_pass(ep, source, 10)  # warm up every path
        logged_before = tap.message_lines
        for r in range(rounds):
            order = list(paths.items())
            if r % 2:
                order.reverse()  # neither path always runs first
            line = f"  round {r + 1}/{rounds}:"
            for label, ep in order:
                cpu0 = tap.cpu_seconds()
                fps, lat_ms, _ = serve_pass(ep, source, frames)
                out[f"{label}_fps"].append(fps)
                if label == "tap":
                    out["tap_cpu_ms"].append((tap.cpu_seconds() - cpu0) * 1000 / frames)
                if label in ("direct", "tap"):
                    out[f"{label}_latency_ms"] += lat_ms
                line += f" {label} {fps:.1f} fps"
            _log(line + f" → tap ÷ direct {out['tap_fps'][-1] / out['direct_fps'][-1]:.3f}")
        time.sleep(0.5)  # the tap's last lines reach the pipe
        out["messages_logged"] = tap.message_lines - logged_before
    ratios = [t / d for t, d in zip(out["tap_fps"], out["direct_fps"], strict=True)]
    out.update({
        "ratio": round(statistics.median(ratios), 3), "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "socat_ratio": round(statistics.median(s / d for s, d in zip(out["socat_fps"], out["direct_fps"],
                                                                      strict=True)), 3) if socat else None,
        "tap_cpu_ms_per_frame": round(statistics.median(out["tap_cpu_ms"]), 2),
        "latency_p50_ms": {"direct": round(pct(out["direct_latency_ms"], 50), 2),
                           "tap": round(pct(out["tap_latency_ms"], 50), 2)},
    })
    for key in ("direct_latency_ms", "tap_latency_ms", "tap_cpu_ms"):
        del out[key]
    return out


# --------------------------------------------------------------------------- machine


def machine() -> dict:
    model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    x264 = sorted(os.path.basename(p) for p in glob.glob(os.path.join(os.path.dirname(av.__file__), "..", "av.libs", "libx264*")))
    return {
        "cpu": model, "cores": os.cpu_count(), "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(), "python": platform.python_version(), "pyav": av.__version__,
        "libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
        "libx264": x264[0] if x264 else "?", "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


# --------------------------------------------------------------------------- report


def _mb(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def _met(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**not met**")


def goals(data: dict) -> list[tuple[str, str, str, str, bool | None]]:
    """(figure, goal, measured, limit/absolute, met) rows of the summary."""
    rows = []
    req = {r["name"]: r for r in data["request"]}
    if "1080p NV12" in req:
        r = req["1080p NV12"]
        rows.append(("Request throughput 1080p NV12 (serve ÷ bare libx264)", "≥ 0.85",
                     f"**{r['ratio']:.3f}** (rounds {r['ratio_min']:.3f}–{r['ratio_max']:.3f})",
                     f"{r['serve_fps']} vs {r['bare_fps']} fps; transfer-only ceiling {r['ceiling']}",
                     r["ratio"] >= 0.85))
        o = r["overhead_ms"]
        rows.append(("Latency overhead 1080p NV12, p50 (reply − bare encode of the frame)", "≤ 3 ms",
                     f"**{o['p50']:.2f} ms**", f"latency p50/p95/p99 {r['latency_ms']['p50']}/"
                     f"{r['latency_ms']['p95']}/{r['latency_ms']['p99']} ms; bare p50 {r['bare_ms']['p50']} ms",
                     o["p50"] <= 3.0))
    sc = data.get("scanout")
    if sc:
        for c in sc["counts"]:
            rows.append((f"Scanout push, {c['subscribers']} subscriber(s), slowest subscriber", "60 fps (≥ 57)",
                         f"**{c['fps_min']} fps**", f"median {c['fps_median']} fps; serve CPU "
                         f"{c['serve_cpu_cores']:.2f} cores", c["fps_min"] >= 57))
        st = sc["stall"]
        base = next(c for c in sc["counts"] if c["subscribers"] == 4)
        ratio = st["fps_min"] / base["fps_min"] if base["fps_min"] else 0.0
        rows.append(("Scanout, 4 live + 1 stalled: slowest live ÷ slowest without the stall", "≥ 0.95",
                     f"**{ratio:.3f}**", f"{st['fps_min']} vs {base['fps_min']} fps", ratio >= 0.95))
    ra = data.get("run_all")
    if ra:
        for label, goal in (("healthy", 2.0), ("empty", 1.0), ("hung", ra["hung"]["timeout_s"] + 1.0)):
            worst = max(ra[label]["times_s"])
            rows.append((f"`run --all` wall time, {label}", f"≤ {goal:g} s", f"**{worst:.2f} s** (worst of "
                         f"{len(ra[label]['times_s'])})", f"reply timeout {ra[label]['timeout_s']:g} s",
                         worst <= goal))
    tap = data.get("tap")
    if tap:
        socat = f"; socat in the same spot {tap['socat_ratio']:.3f}" if tap.get("socat_ratio") else ""
        rows.append(("Tap cost, 1080p NV12 request mode (through `helixdiag tap` ÷ direct)", "≥ 0.9",
                     f"**{tap['ratio']:.3f}** (rounds {tap['ratio_min']:.3f}–{tap['ratio_max']:.3f})",
                     f"{statistics.median(tap['tap_fps']):.1f} vs {statistics.median(tap['direct_fps']):.1f} fps{socat}",
                     tap["ratio"] >= 0.9))
    mem = data.get("memory")
    if mem:
        rows.append(("`serve` peak RSS, 16 clients streaming 1080p NV12", "bounded (reported)",
                     f"**{_mb(mem['peak_rss'])}**", f"idle {_mb(mem['idle_rss'])}, "
                     f"{_mb(mem['per_client'])} per client", None))
        h = mem["huge_header"]
        grew = h["rss_after"] - h["rss_before"]
        rows.append(("Header announcing 4 GiB: RSS growth", "≈ 0 (< 1 MiB)", f"**{grew / 2**20:+.2f} MiB**",
                     f"answered {h['reply']} in {h['answer_ms']} ms, then closed", grew < 2**20))
    return rows


def render(data: dict) -> str:
    m = data["machine"]
    out = [
        "# Benchmarks",
        "",
        f"Generated by `{data['command']}` on {data['date']} (wall time of the run: "
        f"{data['wall_s']:.0f} s). Regenerate with `make bench`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}, PyAV {m['pyav']} (libavcodec {m['libavcodec']}, {m['libx264']}). "
        f"Load average at start {m['loadavg_start']}, at end {data['loadavg_end']}: this machine is "
        "shared and noisy, so every figure is a **ratio against a limit measured in the same run**, "
        "interleaved round by round; absolute times stand beside them.",
        "",
        "## Summary",
        "",
        "| Figure | Goal | Measured | Absolute / limit | |",
        "|---|---|---|---|---|",
    ]
    for fig, goal, measured, absolute, ok in goals(data):
        out.append(f"| {fig} | {goal} | {measured} | {absolute} | {_met(ok)} |")
    out += ["", "## 1. Request-mode throughput (one request in flight, like vsockenc)", ""]
    out += [
        "`send` → `helixdiag serve` subprocess on 127.0.0.1 over TCP (client and server do not "
        "share a GIL), one FRAME_REQUEST in flight, the client's own H.264 decoding off "
        "(`decode=False`: it is not the server's cost; framing and SPS checks stay on). Limit: "
        "the bare encoder in this process — raw PyAV libx264 with the options and threads of "
        "`helixdiag.encoders.x264.X264Encoder`, NV12 straight from the same buffers into "
        "libx264 (no copy, no conversion, no Annex-B rewrite), the same keyframes "
        f"(every {KEYFRAME_INTERVAL}th frame forced), encoder opened before its clock starts. "
        "For BGRx the bare path is swscale BGRx→NV12 (the conversion the server does) then "
        "libx264. Frames: `SyntheticSource`, pre-rendered once and replayed to both. "
        "Ratio = median over rounds of serve fps ÷ bare fps of the same round. Ceiling = what "
        "moving the request and its reply over loopback alone allows: "
        "bare time ÷ (bare time + measured round trip of those bytes between two processes).",
        "",
        "| Config | Frames | Bare fps | Serve fps | **Ratio** | Rounds | Ceiling | Loopback round trip |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in data["request"]:
        out.append(f"| {r['name']} | {r['frames']} | {r['bare_fps']} | {r['serve_fps']} | **{r['ratio']:.3f}** | "
                   f"{r['ratio_min']:.3f}–{r['ratio_max']:.3f} | {r['ceiling']} | "
                   f"{r['transfer_ms']:.2f} ms ({_mb(r['request_bytes'])} + {r['reply_bytes'] // 1024} KiB) |")
    req = {r["name"]: r for r in data["request"]}
    if "1080p BGRx" in req and "1080p NV12" in req:
        b, n = req["1080p BGRx"], req["1080p NV12"]
        out += ["", f"BGRx 1080p against the NV12 bare encoder (the issue's \"NV12 straight into libx264\" "
                f"limit, which BGRx input cannot reach without a conversion): "
                f"{b['serve_fps']} ÷ {n['bare_fps']} = {b['serve_fps'] / n['bare_fps']:.3f}."]
    out += ["", "## 2. Latency (same runs)", "",
            "Per frame: the client's send-to-reply time; overhead = that minus the bare encoder's "
            "time for the same frame index in the same round (keyframes line up).", "",
            "| Config | Latency p50 / p95 / p99 | Bare encode p50 / p95 / p99 | **Overhead p50** / p95 / p99 |",
            "|---|---|---|---|"]
    for r in data["request"]:
        lat, bare, ov = r["latency_ms"], r["bare_ms"], r["overhead_ms"]
        out.append(f"| {r['name']} | {lat['p50']} / {lat['p95']} / {lat['p99']} ms | {bare['p50']} / "
                   f"{bare['p95']} / {bare['p99']} ms | **{ov['p50']}** / {ov['p95']} / {ov['p99']} ms |")
    sc = data.get("scanout")
    if sc:
        out += ["", "## 3. Scanout push (1920x1080, --fps 60)", "",
                f"Subscribers are `send --mode scanout` exchanges (threads of this process, decoding off), "
                f"{sc['seconds']:g} s each; fps counted after the first second. CPU: the serve "
                "process's user+system seconds per wall second (2 cores = 2.0).", "",
                "| Subscribers | fps min / median / max | serve CPU | clients' CPU | worst p99 gap | status |",
                "|---|---|---|---|---|---|"]
        for c in sc["counts"]:
            out.append(f"| {c['subscribers']} | {c['fps_min']} / {c['fps_median']} / {c['fps_max']} | "
                       f"{c['serve_cpu_cores']:.2f} cores | {c['clients_cpu_cores']:.2f} cores | "
                       f"{c['gap_p99_ms']} ms | {', '.join(c['status'])} |")
        st = sc["stall"]
        out += ["", f"Stalled subscriber: it subscribes and never reads (16 KiB receive buffer). After "
                f"{st['fill_s']} s the server's send queue towards it stopped growing at "
                f"{_mb(st['server_send_queue_bytes'])} (its writer thread blocks; the producer drops "
                f"its frames instead of queueing). Then 4 live subscribers ran: "
                f"min {st['fps_min']} / median {st['fps_median']} fps ({', '.join(st['status'])}), "
                f"{st['frames_pushed_to_live']} frames each, while only "
                f"{_mb(st['stalled_waiting_bytes'])} stayed queued for the stalled one (its socket "
                "buffers; nothing more is kept for it)."]
    ra = data.get("run_all")
    if ra:
        out += ["", "## 4. `run --all` wall time", "",
                "`helixdiag.runner.Runner` with every probe, in this process: the self-test stack "
                "(`selftest.build(None)`: in-process serve on a Unix socket + real socat on loopback), "
                "nothing listening at all (free port, absent socket), and the self-test's "
                "`stream-no-reply` scenario (`serve --fault hang`: accepts, reads, never answers).", "",
                "| Case | Reply timeout | Times | Diagnosis | Slowest probes |", "|---|---|---|---|---|"]
        for label in ("healthy", "empty", "hung"):
            x = ra[label]
            out.append(f"| {label} | {x['timeout_s']:g} s | {', '.join(f'{t:.2f}' for t in x['times_s'])} s | "
                       f"{x['status']} ({x['root_cause'] or 'no failure'}) | {'; '.join(x['slowest'])} |")
    mem = data.get("memory")
    if mem:
        h = mem["huge_header"]
        out += ["", "## 5. Memory", "",
                f"16 request-mode clients streaming 1080p NV12 at once for the run's duration "
                f"({mem['clients_ok']}/16 ok, {mem['frames_total']} frames, {mem['fps_per_client']} fps each "
                f"on 2 cores): serve VmHWM **{_mb(mem['peak_rss'])}** (idle {_mb(mem['idle_rss'])}; "
                f"{_mb(mem['per_client'])} per client: its receive buffer, libx264 at 1080p, its thread).",
                "",
                f"A FRAME_REQUEST header announcing 0xFFFFFFFF payload bytes: answered `{h['reply']}` in "
                f"{h['answer_ms']} ms and closed ({h['closed']}); VmRSS {_mb(h['rss_before'])} before, "
                f"{_mb(h['rss_after'])} after — the limit is checked on the 12-byte header, nothing is "
                "allocated."]
    tap = data.get("tap")
    if tap:
        out += ["", "## 6. The tap's cost (1920x1080 NV12, request mode)", "",
                "`send` (this process, decoding off) → `helixdiag tap --listen tcp://127.0.0.1:0 --to SERVE` "
                "(a subprocess; its log of every message read from a pipe as it comes) → the same "
                "`helixdiag serve` subprocess, against `send` straight to that serve; "
                f"{tap['frames']} frames a pass, {tap['rounds']} rounds, the paths' order alternating "
                "round by round. Ratio = median over rounds of tap fps ÷ direct fps of the same round. "
                "socat (when installed) sits in the same spot as a plain relay for comparison, tuned "
                "(`nodelay` on both sides, `-b 1048576`; untuned — 8 KiB buffer, Nagle on — it ran at "
                "about 10 fps in a trial on this machine).", "",
                "| Path | fps per round | median |", "|---|---|---|"]
        for label in ("direct", "tap", "socat"):
            fps = tap.get(f"{label}_fps") or []
            if fps:
                out.append(f"| {label} | {', '.join(f'{x:.1f}' for x in fps)} | {statistics.median(fps):.1f} |")
        out += ["", f"Tap ÷ direct **{tap['ratio']:.3f}** (rounds {tap['ratio_min']:.3f}–{tap['ratio_max']:.3f})"
                + (f"; socat ÷ direct {tap['socat_ratio']:.3f}" if tap.get("socat_ratio") else "") + ". "
                f"Latency p50 {tap['latency_p50_ms']['direct']} ms direct, {tap['latency_p50_ms']['tap']} ms "
                f"through the tap. The tap process used {tap['tap_cpu_ms_per_frame']} ms of CPU per frame "
                "(two kernel copies of the 3 MB request, like any user-space relay, plus decoding a copy, "
                f"judging and printing); it logged {tap['messages_logged']} message lines for the "
                f"{2 * tap['frames'] * tap['rounds']} messages of the measured passes."]
    rp = data.get("read_path")
    if rp:
        old, new = rp["runs"]
        out += ["", "## The receive path alone (what the change touches)", "",
                "The server's read loop (socket set up like a session's, the same Decoder options) "
                "against a sender process, one 1080p NV12 FRAME_REQUEST in flight, no encoder; "
                "medians of interleaved runs. Before: a fresh zero-filled payload buffer per frame; "
                "after: `Decoder(reuse_pixels=True)`.", "",
                "| | CPU of the reading thread / frame | Wall / frame | recv calls / frame |",
                "|---|---|---|---|",
                f"| before (fresh buffer) | {old['cpu_ms']} ms | {old['wall_ms']} ms | {old['recvs_per_frame']} |",
                f"| after (reused buffer) | {new['cpu_ms']} ms | {new['wall_ms']} ms | {new['recvs_per_frame']} |",
                "",
                f"The allocation itself, measured alone: `bytearray(n)` takes {rp['alloc_ms']['nv12']} ms "
                f"for a 1080p NV12 payload and {rp['alloc_ms']['bgrx']} ms for 1080p BGRx (median); "
                "the reused buffer pays it once per connection (and again only when the frame size grows "
                "or shrinks below a quarter)."]
    base = data.get("baseline")
    if base and any("before" in r for r in data["request"]):
        out += ["", "## Before → after (same run, same rounds)", "",
                f"The server as of `{base}` (the last commit before the hot-path work, extracted with "
                "`git archive` and run as a second serve subprocess) took its turn in every round, "
                "alternating with this tree's, against the same bare pass and the same frames.", "",
                "| Config | Ratio before | Ratio after | Latency p50 before → after | "
                "Overhead p50 before → after | Overhead p95 before → after |",
                "|---|---|---|---|---|---|"]
        rows = []
        for r in data["request"]:
            b = r.get("before")
            if b:
                rows.append(f"| {r['name']} | {b['ratio']:.3f} | {r['ratio']:.3f} | "
                           f"{b['latency_ms']['p50']} → {r['latency_ms']['p50']} ms | "
                           f"{b['overhead_ms']['p50']} → {r['overhead_ms']['p50']} ms | "
                           f"{b['overhead_ms']['p95']} → {r['overhead_ms']['p95']} ms |")
        pairs = data.get("paired") or []
        if pairs:
            out[-2:-2] = [
                "Frame by frame (the sharper test): every frame went to both servers over two open "
                "connections, in alternating order, and the latency difference was taken per frame, "
                "so the machine's noise hits both sides of each pair alike; half the frames with the "
                "new server started first, half with the old one first (the first-started of two "
                "serve processes measured ~0.2 ms slower whichever code it ran). CPU: the serve "
                "process's user+system time per frame (libx264's threads included).", "",
                "| Config | Frames | Latency p50 before → after | Paired difference p50 / mean "
                "(after − before) | CPU per frame before → after |", "|---|---|---|---|---|",
                *[f"| {p['name']} | {p['frames']} | {p['before_p50']} → {p['after_p50']} ms | "
                  f"**{p['diff_p50']:+.3f}** / {p['diff_mean']:+.3f} ms | {p['cpu_before_ms']} → "
                  f"{p['cpu_after_ms']} ms |" for p in pairs],
                "", "Round by round (throughput ratios, each against its round's bare pass):", ""]
        out += rows
    out += ["", "## Profiles of the serve process (1080p NV12, request mode)", ""]
    profiles = data.get("profile") or {}
    out += _render_profile("After (this tree)", profiles.get("after"))
    if "before" in profiles:
        out += _render_profile(f"Before (`{base}`)", profiles.get("before"))
    notes = data.get("notes")
    if notes:
        out += ["", "## Notes", "", *notes]
    return "\n".join(out) + "\n"


def _render_profile(title: str, prof: dict | None) -> list[str]:
    lines = [f"### {title}", ""]
    if not prof:
        return lines + ["py-spy is not installed in the venv (`.venv/bin/pip install py-spy`); no profile.", ""]
    if "error" in prof:
        return lines + [f"py-spy failed: {prof['error']}", ""]
    lines += [f"py-spy, wall clock (`--idle`), the client thread of serve, {prof['samples']} samples over "
              f"{prof['seconds']:g} s at {prof['fps']} fps.", "", "| Where | Share |", "|---|---|"]
    lines += [f"| {k} | {v}% |" for k, v in prof["categories"]]
    lines += ["", "<details><summary>Top lines</summary>", "", "| Line | Share |", "|---|---|"]
    lines += [f"| `{k}` | {v}% |" for k, v in prof["top_lines"]]
    return lines + ["", "</details>", ""]


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="write the Markdown report here (e.g. docs/benchmarks.md)")
    ap.add_argument("--json", help="also write the raw figures as JSON here")
    ap.add_argument("--quick", action="store_true", help="fewer frames and rounds (about a minute)")
    ap.add_argument("--only", default="request,scanout,run,memory,profile,tap",
                    help="comma-separated sections to run (default: all)")
    ap.add_argument("--baseline", default=BASELINE_REV,
                    help="git revision whose server is measured beside this tree's (before/after)")
    ap.add_argument("--no-baseline", action="store_true", help="measure this tree's server only")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))

    def on_alarm(*_):
        raise BenchTimeout(f"the benchmark overran {OVERALL_LIMIT_S} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(OVERALL_LIMIT_S)
    started = time.monotonic()
    cmd = "python tests/bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    data: dict = {"command": cmd.strip(), "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
                  "machine": machine(), "request": [], "baseline": None}
    _log(f"machine: {data['machine']}")
    with tempfile.TemporaryDirectory(prefix="hxd-bench-base-") as tmp:
        base_src = None
        if not args.no_baseline and only & {"request", "profile"}:
            base_src = baseline_tree(args.baseline, tmp)
            data["baseline"] = args.baseline if base_src else None
        if "request" in only:
            with contextlib.ExitStack() as stack:
                servers = {"after": stack.enter_context(ServeProcess())}
                if base_src:
                    servers["before"] = stack.enter_context(ServeProcess(src=base_src))
                data["request"] = [f.summary() for f in bench_request(servers, args.quick)]
            data["read_path"] = {"runs": bench_read_path(args.quick), "alloc_ms": {
                "nv12": alloc_ms(1920 * 1080 * 3 // 2), "bgrx": alloc_ms(1920 * 1080 * 4)}}
        if "request" in only and base_src:
            data["paired"] = paired(base_src, args.quick)
        if "profile" in only:
            data["profile"] = {"after": bench_profile(args.quick)}
            if base_src:
                data["profile"]["before"] = bench_profile(args.quick, base_src)
    if "scanout" in only:
        data["scanout"] = bench_scanout(args.quick, None)
    if "run" in only:
        data["run_all"] = bench_run_all(args.quick)
    if "memory" in only:
        data["memory"] = bench_memory(args.quick, None)
    if "tap" in only:
        data["tap"] = bench_tap(args.quick)
    signal.alarm(0)
    data["wall_s"] = time.monotonic() - started
    data["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    data["notes"] = NOTES
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
    if args.out:
        Path(args.out).write_text(render(data))
        _log(f"wrote {args.out}")
    for fig, goal, measured, _, ok in goals(data):
        print(f"{_met(ok):>12}  {fig}: {measured.replace('**', '')} (goal {goal})")
    _log(f"done in {data['wall_s']:.0f} s")
    return 0


NOTES: list[str] = [
    "* **What changed in the hot path.** `protocol.Decoder(reuse_pixels=True)`, used by the "
    "server only: each connection reads FRAME_REQUEST payloads into one buffer, reused frame "
    "after frame, instead of a fresh zero-filled 3 MB (NV12) / 8 MB (BGRx) `bytearray` per "
    "frame. Ownership rule: a FrameRequest's `pixels` stay valid until the caller comes back "
    "to the decoder (next `next_message()`, `feed()` or `buffer()`); the server encodes and "
    "replies before it reads on, and libx264/VideoToolbox copy the picture during `encode`. "
    "Messages still queued never share the buffer. Default decoders are unchanged "
    "(tests/test_protocol.py `TestReusePixels`).",
    "* **Scanout pacing.** The scanout producer used to restart its clock whenever a frame "
    "finished late, so every scheduling hiccup lowered the rate for good (55.6 fps for the "
    "slowest of 16 subscribers in a quick run on a loaded machine); it now keeps its clock "
    "and only skips ahead when more than a whole frame behind, so 60 fps stays 60.",
    "* **Checked, already right.** TCP_NODELAY and 4 MiB SO_SNDBUF/SO_RCVBUF on both ends "
    "(`net.tune`; the kernel doubles them to 8 MiB, so a 1080p NV12 request goes out in one "
    "`sendmsg`); NV12 reaches libx264 with no copy (`VideoFrame.from_numpy_buffer` on the "
    "received buffer); replies go out as `sendmsg` of header + AU without joining; PyAV "
    "releases the GIL during `encode` (another Python thread kept ~73 % of its speed during "
    "1080p encodes); the Python around the encode (layout checks, Annex-B rewrite, reply "
    "framing) is a few per cent of the frame in the profiles below.",
    "* **Tried and not kept.** Reading the pixel payload with one blocking "
    "`recv(MSG_WAITALL)` (SO_RCVTIMEO keeping the 0.25 s wake-ups) instead of poll + recv per "
    "chunk: one syscall per payload, but no gain in the receive path alone (wall 1.60 vs "
    "1.46 ms per frame, CPU equal, measured while writing this), so the simpler loop stays.",
    "* **Encoder off the socket thread.** With one request in flight there is nothing to "
    "overlap: the next request only leaves the guest after the reply arrived, so a separate "
    "encode thread would add a hand-off to every frame. Scanout mode already encodes once per "
    "frame on its producer thread and writes from one thread per subscriber, with a one-slot "
    "mailbox (a stalled subscriber only loses its own frames: section 3).",
    "* **Where the rest of the gap goes** (a per-frame timeline taken while writing this, "
    "1080p NV12): the client's `sendmsg` of 3.1 MB from memory that is not in cache takes "
    "~1.1 ms (the server's copy-out overlaps it), the server's Python around the encode "
    "~0.3 ms, the reply and the client's loop ~0.2 ms; libx264's slice threads also wake from "
    "idle at every frame, which back-to-back bare encodes never do. The issue's 0.6 ms for "
    "3.1 MB holds for a buffer already in cache on a quiet machine (measured here too); the "
    "ceiling column uses the round trip measured in this run, one buffer sent over and over.",
    "* **Noise.** This is a 2-core VM shared with other work; other processes' load moves "
    "every absolute figure by tens of per cent between minutes (see the load averages above "
    "and the per-round ranges). Ratios pair passes taken seconds apart and take the median "
    "over rounds; before/after alternate within each round.",
    "* **`run --all`, hung host.** Two probes talk to the hung host (`guest-tcp.ping` through "
    "socat's port, `stream.ping` on the socket) and the runner serialises talking probes "
    "(H1/H2 hosts serve one client at a time, see docs/protocol.md), so when both run the "
    "wall time is about twice the reply timeout; it is within the goal only when one of them "
    "is blocked by an earlier failure.",
]

if __name__ == "__main__":
    sys.exit(main())
