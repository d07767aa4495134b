"""Hardening: `serve` under malformed input and misbehaving peers, and `run` against
endpoints that answer garbage, close early or hang.

The server under test is the real `python -m helixdiag serve` in a subprocess on
127.0.0.1:0 (one for the whole module, `--idle-timeout 2` so every "dropped within its
timeout" is bounded); its stdout and stderr are captured, and after every test it must still
run and must never have printed a traceback. Its log lines ("connect PEER", "disconnect
PEER: reason") tell when the server let go of each of our connections.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psutil
import pytest
from conftest import REPO, helixdiag_cmd, run_cli

from helixdiag import net, protocol, runner
from helixdiag.client import ExchangeOptions, exchange
from helixdiag.config import resolve
from helixdiag.protocol import (
    DEFAULT_MAX_PAYLOAD,
    FLAG_PIXEL_DATA,
    HEADER,
    MAGIC,
    ErrorCode,
    ErrorMessage,
    FrameRequest,
    FrameResponse,
    MsgType,
    PixelFormat,
)

pytestmark = pytest.mark.timeout(120)

IDLE = 2.0  # the server's --idle-timeout in this module
SLACK = 1.5  # how much later than its timeout a bad peer may be dropped (poll interval, a busy box)
SEED = 20260808


# ------------------------------------------------------------------------ the server


class ServeProcess:
    """`helixdiag serve` in a subprocess with its output captured line by line."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "400"}
        self.proc = subprocess.Popen(
            helixdiag_cmd("serve", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True, errors="replace", cwd=REPO, env=env,
        )
        self.lines: list[tuple[float, str]] = []  # (time.monotonic() it arrived, stdout line)
        self.errors: list[str] = []  # stderr lines
        self._cond = threading.Condition()
        threading.Thread(target=self._pump, args=(self.proc.stdout, False), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, True), daemon=True).start()
        found = self.wait_line(lambda line: line.startswith("listening tcp://"), timeout=30)
        if found is None:
            self.stop()
            raise AssertionError(f"serve did not report `listening`: {self.output()}")
        self.port = int(found[1].rsplit(":", 1)[1])
        self.endpoint = net.Endpoint("tcp", host="127.0.0.1", port=self.port)
        self.ps = psutil.Process(self.proc.pid)

    def _pump(self, stream, is_err: bool) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            with self._cond:
                if is_err:
                    self.errors.append(line)
                else:
                    self.lines.append((time.monotonic(), line))
                self._cond.notify_all()

    def output(self) -> str:
        with self._cond:
            return "\n".join([line for _, line in self.lines] + self.errors)

    def wait_line(self, predicate: Callable[[str], bool], timeout: float, since: float = 0.0) -> tuple[float, str] | None:
        """The first stdout line logged after `since` (monotonic) that matches."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for stamp, line in self.lines:
                    if stamp >= since and predicate(line):
                        return stamp, line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.proc.poll() is not None:
                    return None
                self._cond.wait(min(remaining, 0.1))

    def disconnect_of(self, peer: str, since: float, timeout: float) -> tuple[float, str] | None:
        """When the server logged `disconnect PEER: …` for our connection from `peer` (its
        local address) opened at `since` — ports are reused, so older lines do not count."""
        return self.wait_line(lambda line: f" disconnect {peer}: " in f" {line}", timeout, since)

    def open_peers(self) -> set[str]:
        opened, closed = set(), set()
        with self._cond:
            for _, line in self.lines:
                words = line.split()
                if len(words) >= 3 and words[1] == "connect":
                    opened.add(words[2])
                elif len(words) >= 3 and words[1] == "disconnect":
                    closed.add(words[2].rstrip(":"))
        return opened - closed

    def settle(self, timeout: float) -> bool:
        """Wait until the server has let go of every connection it logged."""
        deadline = time.monotonic() + timeout
        while self.open_peers():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        time.sleep(0.1)  # let the pumps read the last lines
        return self.proc.returncode


def assert_no_traceback(server: ServeProcess) -> None:
    text = server.output()
    for marker in ("Traceback", "Exception in thread", "Exception ignored"):
        assert marker not in text, f"serve printed {marker!r}:\n{text[-4000:]}"


@pytest.fixture(scope="module")
def serve_process() -> Iterator[ServeProcess]:
    server = ServeProcess("--tcp", "127.0.0.1:0", "--size", "160x120", "--fps", "10", "--gop", "30",
                          "--idle-timeout", f"{IDLE:g}")
    try:
        yield server
    finally:
        code = server.stop()
        assert_no_traceback(server)
        assert code == 0, f"serve exited with {code} on SIGTERM:\n{server.output()[-2000:]}"
        assert "stopped:" in server.output()


@pytest.fixture
def serve(serve_process: ServeProcess) -> Iterator[ServeProcess]:
    assert serve_process.alive(), f"serve died earlier:\n{serve_process.output()[-3000:]}"
    assert serve_process.settle(IDLE + 3 * SLACK), f"connections left over: {serve_process.open_peers()}"
    yield serve_process
    assert serve_process.alive(), f"serve died:\n{serve_process.output()[-3000:]}"
    assert_no_traceback(serve_process)


def assert_served(endpoint: net.Endpoint, frames: int = 3) -> None:
    """A well-behaved vsockenc-like client gets correct, decodable frames of its pictures."""
    result = exchange(ExchangeOptions(endpoint=endpoint, frames=frames, size=(96, 64), timeout=5.0,
                                      connect_timeout=5.0))
    assert result.status == "pass", result.to_dict()["findings"]
    assert (result.frames_received, result.frames_decoded) == (frames, frames)


def local_peer(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def connect(server: ServeProcess, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_to_end(sock: socket.socket, timeout: float) -> tuple[bytes, str]:
    """Everything the server sends until it closes: (bytes, "eof" | "reset" | "timeout")."""
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return b"".join(chunks), "timeout"
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(1 << 16)
        except TimeoutError:
            return b"".join(chunks), "timeout"
        except ConnectionResetError:
            return b"".join(chunks), "reset"
        if not chunk:
            return b"".join(chunks), "eof"
        chunks.append(chunk)


def header(msg_type: int, payload_size: int, *, flags: int = 0, session: int = 1, magic: int = MAGIC) -> bytes:
    return HEADER.pack(magic, msg_type, flags, session, payload_size)


# ------------------------------------------------------------------ fuzzing `serve`

# What a guest may send, and the payload_size each fixed-size type must announce.
GUEST_FIXED = {
    MsgType.KEYFRAME_REQ: 0, MsgType.CONFIG_REQ: 28, MsgType.PING: 0, MsgType.ENABLE_SCANOUT: 16,
    MsgType.DISABLE_SCANOUT: 4, MsgType.SUBSCRIBE: 4,
}
HOST_ONLY = (MsgType.FRAME_RESPONSE, MsgType.CONFIG_RESP, MsgType.PONG, MsgType.SCANOUT_RESP,
             MsgType.SUBSCRIBE_RESP, MsgType.ERROR)
UNKNOWN_TYPES = (0x00, 0x06, 0x0F, 0x12, 0x23, 0x32, 0x7F, 0x80, 0xFE)
ODD_SIZES = (0, 1, 3, 4, 5, 11, 12, 16, 27, 28, 29, 43, 44, 45, 72, 260, 0xFFFF, 1 << 24,
             DEFAULT_MAX_PAYLOAD, DEFAULT_MAX_PAYLOAD + 44, DEFAULT_MAX_PAYLOAD + 45, 1 << 31, 0xFFFFFFFF)


Check = Callable[[protocol.Message], bool]


@dataclass
class Case:
    """One connection: send `data`, then FIN (or RST), read until the server closes.

    `replies`: the exact replies expected, in order (None = not checked, only that whatever
    comes back is well-formed host → guest HXFR). `must_reply`: they must all arrive and the
    server must then close cleanly; otherwise a reset may cut them short (the server closes
    without reading the rest of a broken stream), but what did arrive must match.
    """

    name: str
    data: bytes
    replies: list[Check] | None = field(default_factory=list)
    must_reply: bool = False
    rst: bool = False
    tail: Callable[[list[protocol.Message]], str | None] | None = None  # extra check of all replies
    linger: float = 0.0  # seconds to wait before closing (a subscriber collecting pushed frames)


def is_error(kind: str, code: int = ErrorCode.INVALID_MSG) -> Check:
    return lambda m: isinstance(m, ErrorMessage) and m.code == code and kind in m.message


def is_type(cls: type, **fields_) -> Check:
    return lambda m: isinstance(m, cls) and all(getattr(m, k) == v for k, v in fields_.items())


def is_frame(m: protocol.Message) -> bool:
    """One Annex-B access unit, for session 1 (request mode)."""
    return (isinstance(m, FrameResponse) and m.nal_count == 1 and m.session_id == 1
            and bytes(m.nals[0][:4]) == b"\0\0\0\x01")


def size_cases() -> list[Case]:
    """Every message type with every odd payload_size (header only): the server must answer
    ERROR -1 naming the violation and close, answer a complete control message, or wait for
    the payload and close on our FIN — never anything else."""
    cases = []
    for size in ODD_SIZES:
        for msg_type, expected in GUEST_FIXED.items():
            data = header(msg_type, size)
            if size != expected:
                cases.append(Case(f"{msg_type.name} size {size}", data, [is_error("bad-size")], must_reply=True))
            elif msg_type == MsgType.PING:
                cases.append(Case("PING", data, [is_type(protocol.Pong, session_id=1)], must_reply=True))
            else:
                cases.append(Case(f"{msg_type.name} header only", data))
        # FRAME_REQUEST without pixels must be 44; with pixels 44 < size <= 44 + max.
        if size != 44:
            cases.append(Case(f"FRAME_REQUEST size {size}", header(MsgType.FRAME_REQUEST, size),
                              [is_error("bad-size")], must_reply=True))
        pixel_claim = header(MsgType.FRAME_REQUEST, size, flags=FLAG_PIXEL_DATA)
        if size <= 44:
            cases.append(Case(f"pixels size {size}", pixel_claim, [is_error("bad-size")], must_reply=True))
        elif size - 44 > DEFAULT_MAX_PAYLOAD:
            cases.append(Case(f"pixels size {size}", pixel_claim, [is_error("too-large")], must_reply=True))
        else:
            cases.append(Case(f"pixels size {size}, none sent", pixel_claim))
        for msg_type in HOST_ONLY:
            cases.append(Case(f"{msg_type.name} from a guest", header(msg_type, size),
                              [is_error("unexpected-type")], must_reply=True))
        for msg_type in UNKNOWN_TYPES:
            data = header(msg_type, size, flags=0xFF, session=0xFFFF)
            if size > DEFAULT_MAX_PAYLOAD:
                cases.append(Case(f"type 0x{msg_type:02x} size {size}", data, [is_error("too-large")], must_reply=True))
            else:
                cases.append(Case(f"type 0x{msg_type:02x} size {size}", data))  # skipped unread
    for magic in (0x58465848, 0x48584652, 0x72667868, 0, 0xFFFFFFFF, MAGIC ^ 1, MAGIC >> 8):
        cases.append(Case(f"magic 0x{magic:08x}", header(MsgType.PING, 0, magic=magic),
                          [is_error("bad-magic")], must_reply=True))
    # Peer bytes the server quotes in its log (a bad magic, a pixel format's fourcc) that
    # look like rich console markup: the log must print them, not interpret them.
    for text in (b"[/x]", b"[b]]", b"[/]\\", b"[@a]"):
        (magic,) = struct.unpack("<I", text)
        cases.append(Case(f"magic {text!r}", header(MsgType.PING, 0, magic=magic),
                          [is_error("bad-magic")], must_reply=True))
        pixels = bytes(protocol.frame_layout(PixelFormat.NV12, 16, 16).size)
        cases.append(Case(f"format {text!r}", protocol.encode(FrameRequest(16, 16, magic, 0, pixels=pixels)),
                          [is_error("format")], must_reply=True))
    return cases


def valid_messages(rng: random.Random) -> list[tuple[bytes, list[Check]]]:
    """Well-framed messages with odd contents, each with the replies it must get."""
    sid = rng.randrange(1 << 16)
    scanout = rng.choice([0, 1, 15, 16, 0xFFFF, 0xFFFFFFFF, rng.randrange(1 << 32)])
    w, h = rng.randrange(1, 49), rng.randrange(1, 49)
    layout = protocol.frame_layout(PixelFormat.NV12, w, h)
    pixels = rng.randbytes(layout.size)
    unknown = rng.choice(UNKNOWN_TYPES)
    unknown_size = rng.choice([0, 1, 7, 300, 5000])
    options = [
        (protocol.encode(protocol.Ping(sid)), [is_type(protocol.Pong, session_id=sid)]),
        (protocol.encode(protocol.KeyframeRequest(sid)), []),
        (protocol.encode(protocol.ConfigRequest(rng.randrange(1 << 32), rng.randrange(1 << 32),
                                                rng.choice([0, 100_000, 2_000_000, 20_000_000]),
                                                rng.randrange(1 << 32), rng.randrange(1 << 32),
                                                rng.randrange(256), rng.randrange(256), rng.randrange(256),
                                                sid)), []),
        (protocol.encode(protocol.EnableScanout(scanout, rng.randrange(1 << 32), rng.randrange(1 << 32),
                                                rng.randrange(1 << 32), sid)),
         [is_type(protocol.ScanoutResponse, scanout_id=scanout, success=True, session_id=sid)]),
        (protocol.encode(protocol.DisableScanout(scanout, sid)),
         [is_type(protocol.ScanoutResponse, scanout_id=scanout, session_id=sid)]),
        (header(unknown, unknown_size, flags=rng.randrange(256), session=sid) + rng.randbytes(unknown_size), []),
        # No pixels, a resource we cannot read: ERROR -2.
        (protocol.encode(FrameRequest(w, h, PixelFormat.NV12, 0, resource_id=rng.randrange(1, 1 << 32))),
         [is_error("resource", ErrorCode.RESOURCE_NOT_FOUND)]),
        # No pixels, resource 0: the console at the asked size (0 = the server's size).
        (protocol.encode(FrameRequest(rng.choice([0, w]), rng.choice([0, h]), 0, 0, resource_id=0)), [is_frame]),
        # Sizes outside 1..8192, unknown formats, too few pixels, a stride below the width.
        (protocol.encode(FrameRequest(rng.choice([0, 8193, 1 << 31]), h, PixelFormat.NV12, 0,
                                      pixels=pixels)), [is_error("out of range")]),
        (protocol.encode(FrameRequest(w, h, rng.choice([0, 1, 0x34325258, 0xFFFFFFFF]), 0, pixels=pixels)),
         [is_error("format")]),
        (protocol.encode(FrameRequest(w, h, PixelFormat.NV12, 0, pixels=pixels[: rng.randrange(1, layout.size)])),
         [is_error("pixel bytes")]),
        (protocol.encode(FrameRequest(w + 8, h, PixelFormat.BGRA8888, 4 * w, pixels=pixels)),
         [is_error("stride")]),
        # Valid pixels, with odd pts, duration and reserved-but-ignored fields.
        (protocol.encode(FrameRequest(w, h, PixelFormat.NV12, layout.stride, pts=rng.randrange(-(1 << 63), 1 << 63),
                                      duration=-1, force_keyframe=rng.random() < 0.5, pixels=pixels,
                                      session_id=sid)), [is_frame]),
    ]
    return options


def make_case(rng: random.Random) -> Case:
    """One random malformed (or odd-but-valid) connection."""
    roll = rng.random()
    if roll < 0.25:  # random bytes
        data = rng.randbytes(rng.choice([1, 5, 11, 12, 13, 40, 300, 3000]))
        if data[:4] == b"HXFR":
            return Case("random bytes with the magic", data, None)
        error = "bad-magic" if len(data) >= 12 else None
        return Case("random bytes", data, None if error else [], rst=rng.random() < 0.1, tail=_only_error(error))
    if roll < 0.40:  # a valid message cut short, then EOF
        msg, _ = rng.choice(valid_messages(rng))
        cut = rng.randrange(1, len(msg))
        return Case(f"cut at {cut}/{len(msg)}", msg[:cut], [], rst=rng.random() < 0.2)
    if roll < 0.55:  # a pixel payload shorter than announced, then EOF (or RST)
        n = rng.choice([1, 100, 65_536, 1_000_000, rng.randrange(1, 4 << 20)])
        body = protocol.encode(FrameRequest(rng.randrange(1 << 14), rng.randrange(1 << 14), PixelFormat.NV12, 0,
                                            pixels=b"\0"))[12:56]
        sent = rng.randrange(0, min(n, 1 << 20))
        data = header(MsgType.FRAME_REQUEST, 44 + n, flags=FLAG_PIXEL_DATA) + body + rng.randbytes(sent)
        return Case(f"{sent} of {n} pixel bytes", data, [], rst=rng.random() < 0.3)
    if roll < 0.65:  # a good message, then a broken header
        good, expected = rng.choice(valid_messages(rng))
        bad = header(rng.choice(HOST_ONLY), 0)
        return Case("good then unexpected type", good + bad, [*expected, is_error("unexpected-type")],
                    must_reply=True)
    if roll < 0.95:  # a chain of well-framed, odd messages: every one answered, in order
        data, expected = b"", []
        for _ in range(rng.randrange(1, 6)):
            msg, replies = rng.choice(valid_messages(rng))
            data += msg
            expected += replies
        data += protocol.encode(protocol.Ping(0xBEEF))
        return Case("chain", data, [*expected, is_type(protocol.Pong, session_id=0xBEEF)], must_reply=True)
    # SUBSCRIBE (a scanout producer starts), maybe a bitrate change, then leave.
    scanout = rng.choice([1, 2, 3, rng.randrange(1 << 32)])
    data = protocol.encode(protocol.Subscribe(scanout))
    if rng.random() < 0.5:
        data += protocol.encode(protocol.ConfigRequest(bitrate=rng.choice([10_000, 1_000_000, 50_000_000])))
    data += protocol.encode(protocol.KeyframeRequest())
    return Case(f"subscribe {scanout}", data, None, must_reply=True, tail=_subscription(scanout), linger=0.3)


def _only_error(kind: str | None) -> Callable[[list[protocol.Message]], str | None]:
    def check(msgs: list[protocol.Message]) -> str | None:
        if kind is None:
            return None if not msgs else f"replies to an incomplete header: {msgs}"
        if msgs and not (len(msgs) == 1 and is_error(kind)(msgs[0])):
            return f"expected at most ERROR -1 {kind}, got {msgs}"
        return None
    return check


def _subscription(scanout: int) -> Callable[[list[protocol.Message]], str | None]:
    def check(msgs: list[protocol.Message]) -> str | None:
        if not msgs or msgs[0] != protocol.SubscribeResponse(scanout, True, scanout & 0xFFFF):
            return f"first reply to SUBSCRIBE {scanout}: {msgs[:1]}"
        pushed = msgs[1:]
        if not all(isinstance(m, FrameResponse) and m.session_id == scanout & 0xFFFF and m.nal_count == 1
                   for m in pushed):
            return f"pushed messages for scanout {scanout}: {[type(m).__name__ for m in pushed]}"
        return None
    return check


def run_case(port: int, case: Case) -> str | None:
    """None when the server behaved, else what went wrong."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        with contextlib.suppress(OSError):  # the server may close before reading everything
            sock.sendall(case.data)
        time.sleep(case.linger)
        if case.rst:
            reset(sock)
            return None
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        data, ended = read_to_end(sock, timeout=5.0)
    finally:
        sock.close()
    where = f"{case.name} ({case.data[:24].hex(' ')}{'…' if len(case.data) > 24 else ''})"
    if ended == "timeout":
        return f"{where}: the server neither answered nor closed within 5 s"
    decoder = protocol.Decoder(accept=protocol.HOST_TO_GUEST)
    decoder.feed(data)
    try:
        msgs = list(decoder.messages())
    except protocol.RemoteProtocolError as exc:
        return f"{where}: the server's reply breaks the protocol: {exc}"
    if decoder.in_message and ended == "eof":
        return f"{where}: the server's last reply is cut short ({decoder.bytes_needed} bytes missing)"
    if case.must_reply and ended != "eof":
        return f"{where}: connection {ended} instead of a clean close after the replies"
    if case.replies is not None:
        expected = case.replies
        complete = ended == "eof" or case.must_reply
        if (len(msgs) != len(expected) if complete else len(msgs) > len(expected)) or not all(
                check(m) for check, m in zip(expected, msgs, strict=False)):
            return f"{where}: replies {msgs!r:.600} do not match the {len(expected)} expected"
    if case.tail is not None:
        problem = case.tail(msgs)
        if problem:
            return f"{where}: {problem}"
    return None


class PeakRss:
    """Samples a process's RSS in the background; `.peak` is the highest seen."""

    def __init__(self, ps: psutil.Process) -> None:
        self.ps = ps
        self.peak = ps.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.ps.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def settle_resources(server: ServeProcess, threads: int, fds: int, timeout: float = 5.0) -> tuple[int, int]:
    """Wait for the server's thread and descriptor counts to come back down."""
    deadline = time.monotonic() + timeout
    while True:
        now = (server.ps.num_threads(), server.ps.num_fds())
        if (now[0] <= threads and now[1] <= fds) or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


FUZZ_BATCHES = 4
FUZZ_PER_BATCH = 700


def test_fuzz_serve_with_thousands_of_malformed_connections(serve):
    assert_served(serve.endpoint)
    serve.settle(5)
    base_rss, base_threads, base_fds = serve.rss(), serve.ps.num_threads(), serve.ps.num_fds()
    rng = random.Random(SEED)
    systematic = size_cases()
    total = 0
    with PeakRss(serve.ps) as peak:
        for batch in range(FUZZ_BATCHES):
            cases = [make_case(rng) for _ in range(FUZZ_PER_BATCH)]
            if batch == 0:
                cases += systematic
            rng.shuffle(cases)
            with ThreadPoolExecutor(6) as pool:
                problems = [p for p in pool.map(lambda c: run_case(serve.port, c), cases) if p]
            total += len(cases)
            assert not problems, f"batch {batch}: {len(problems)} of {len(cases)} cases failed:\n" + "\n".join(problems[:8])
            # After each batch: a valid client still gets correct frames, nothing leaks.
            assert_served(serve.endpoint)
            assert serve.settle(5), f"connections the server never let go of: {sorted(serve.open_peers())[:5]}"
            threads, fds = settle_resources(serve, base_threads + 2, base_fds + 2)
            rss = serve.rss()
            assert threads <= base_threads + 2, f"threads {base_threads} → {threads} after batch {batch}"
            assert fds <= base_fds + 2, f"file descriptors {base_fds} → {fds} after batch {batch}"
            # Measured: ~70 MB at start, plateauing at 130-200 MB (malloc arenas of the
            # short-lived client threads); a leak of 50 kB per connection passes 150 MB.
            assert rss - base_rss < 150e6, f"RSS {base_rss / 1e6:.0f} → {rss / 1e6:.0f} MB after batch {batch}"
            assert_no_traceback(serve)
    assert total >= 2500
    # In flight, only a handful of connections at once hold buffers (the 64 MiB claims are
    # allocated when their header arrives: see test_memory_follows_bytes_received).
    assert peak.peak - base_rss < 400e6, f"peak RSS {peak.peak / 1e6:.0f} MB (baseline {base_rss / 1e6:.0f} MB)"
    print(f"\n{total} connections; RSS {base_rss / 1e6:.0f} MB → peak {peak.peak / 1e6:.0f} MB → "
          f"{serve.rss() / 1e6:.0f} MB")


def test_memory_follows_bytes_received_not_bytes_claimed(serve):
    base = serve.rss()
    claim = header(MsgType.FRAME_REQUEST, 44 + DEFAULT_MAX_PAYLOAD, flags=FLAG_PIXEL_DATA)
    socks = [connect(serve) for _ in range(4)]
    try:
        for sock in socks:
            sock.sendall(claim + bytes(44))  # a valid header and body, then no pixels at all
        time.sleep(1.0)
        grown = serve.rss() - base
    finally:
        for sock in socks:
            sock.close()
    # 4 × 56 bytes were sent; 4 × 64 MiB were only announced.
    assert grown < 64e6, f"RSS grew {grown / 1e6:.0f} MB for 4 headers that claim 64 MiB each"


# ------------------------------------------------------------ misbehaving peers


def frame_request(width: int = 320, height: int = 240, fill: int = 0x80) -> bytes:
    layout = protocol.frame_layout(PixelFormat.NV12, width, height)
    return protocol.encode(FrameRequest(width, height, PixelFormat.NV12, layout.stride, force_keyframe=True,
                                        pixels=bytes([fill]) * layout.size))


def test_peers_that_vanish_mid_pixel_payload_are_let_go_at_once(serve):
    request = frame_request()
    cut = 56 + (len(request) - 56) // 2
    peers = []
    for i in range(8):
        opened = time.monotonic()
        sock = connect(serve)
        sock.sendall(request[:cut])
        peers.append((local_peer(sock), opened, "fin" if i % 2 else "rst"))
        time.sleep(0.05)  # the server has the header and is reading pixels
        if i % 2:
            sock.close()
        else:
            reset(sock)
    gone = time.monotonic()
    for peer, opened, how in peers:
        found = serve.disconnect_of(peer, opened, timeout=SLACK)
        assert found is not None, f"{peer} ({how}) still held {SLACK} s after it went away"
        assert found[0] - gone < SLACK
        if how == "fin":
            assert "mid-message" in found[1], found[1]
    assert_served(serve.endpoint)


def test_silent_half_open_peers_are_dropped_within_the_idle_timeout_and_others_served(serve):
    request = frame_request()
    variants = {
        "nothing": b"",
        "half a header": request[:5],
        "a header": request[:12],
        "half the pixels": request[: len(request) // 2],
        "a whole request, then silence": request,  # answered, then idle (and the reply unread)
    }
    stuck = []
    for name, data in variants.items():
        opened = time.monotonic()
        sock = connect(serve)
        sock.sendall(data)
        stuck.append((name, sock, local_peer(sock), opened, time.monotonic()))
    try:
        assert_served(serve.endpoint)  # while they hold their slots
        for name, sock, peer, opened, last_byte in stuck:
            found = serve.disconnect_of(peer, opened, timeout=IDLE + 2 * SLACK)
            assert found is not None, f"{name}: never dropped"
            after = found[0] - last_byte
            assert IDLE - 0.3 <= after <= IDLE + SLACK, f"{name}: dropped {after:.2f} s after its last byte"
            data, ended = read_to_end(sock, timeout=1.0)
            assert ended in ("eof", "reset"), f"{name}: the server did not close its end ({ended})"
    finally:
        for _, sock, _, _, _ in stuck:
            sock.close()


def test_slowloris_is_dropped_within_the_idle_timeout(serve):
    """A byte a second never leaves the connection idle, but no message ever completes."""
    request = frame_request(64, 48)
    first = time.monotonic()
    sock = connect(serve)
    peer = local_peer(sock)
    sent = 0
    try:
        while time.monotonic() - first < IDLE + 3 * SLACK:
            try:
                sock.send(request[sent:sent + 1])
            except OSError:
                break  # the server closed: good
            sent += 1
            readable, _, _ = select.select([sock], [], [], 1.0)  # one byte a second
            if readable:
                break  # EOF (or an ERROR): dropped
        served_while_trickling = time.monotonic()
        assert_served(serve.endpoint)
        found = serve.disconnect_of(peer, first, timeout=1.0)
        assert found is not None, f"a peer sending a byte a second was not dropped ({sent} bytes sent)"
        assert found[0] - first <= IDLE + SLACK, f"dropped after {found[0] - first:.1f} s"
        assert found[0] < served_while_trickling + 1.0
        assert sent < len(request)
    finally:
        sock.close()


def test_seventeenth_client_gets_error_and_close_then_slots_free_up(serve):
    holders = []
    try:
        for _ in range(16):
            opened = time.monotonic()
            sock = connect(serve)
            holders.append((sock, local_peer(sock), opened))
        for _, peer, opened in holders:
            assert serve.wait_line(lambda line, p=peer: line.endswith(f" connect {p}"), 5, opened), f"{peer} not admitted"
        extra = connect(serve)
        try:
            data, ended = read_to_end(extra, timeout=3.0)
        finally:
            extra.close()
        assert ended == "eof", f"the 17th client's connection: {ended}"
        replies = protocol.decode_all(data, accept=protocol.HOST_TO_GUEST)
        assert len(replies) == 1 and isinstance(replies[0], ErrorMessage), replies
        assert replies[0].code == ErrorCode.INTERNAL and "slot" in replies[0].message
        # The 16 silent ones are dropped by the idle timeout; then there is room again.
        for _, peer, opened in holders:
            found = serve.disconnect_of(peer, opened, timeout=IDLE + 2 * SLACK)
            assert found is not None and found[0] - opened <= IDLE + SLACK, f"{peer}: {found}"
        assert_served(serve.endpoint)
    finally:
        for sock, _, _ in holders:
            sock.close()


def test_client_that_never_reads_is_dropped_and_others_served(serve):
    """Requests keep coming, replies are never read: once the buffers fill, the server's
    write waits at most --idle-timeout, then it drops that client."""
    width, height = 640, 480
    layout = protocol.frame_layout(PixelFormat.NV12, width, height)
    noise = random.Random(SEED).randbytes(layout.size)  # incompressible: big keyframes
    request = protocol.encode(FrameRequest(width, height, PixelFormat.NV12, layout.stride,
                                           force_keyframe=True, pixels=noise))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    opened = time.monotonic()
    sock.connect(("127.0.0.1", serve.port))
    peer = local_peer(sock)
    try:
        sock.sendall(protocol.encode(protocol.ConfigRequest(bitrate=500_000_000)))
        sock.settimeout(0.5)
        started = time.monotonic()
        stalled = None
        while time.monotonic() - started < 20:
            try:
                sock.sendall(request)
            except TimeoutError:
                stalled = time.monotonic()  # the server stopped reading: it is stuck writing to us
                break
            except OSError:
                break
        assert stalled is not None, "the server kept reading requests whose replies nobody read"
        assert_served(serve.endpoint)
        found = serve.disconnect_of(peer, opened, timeout=IDLE + 2 * SLACK)
        assert found is not None, "a client that never reads was never dropped"
        assert found[0] - stalled <= IDLE + SLACK, f"dropped {found[0] - stalled:.1f} s after the stall"
        assert "timed out" in found[1] or "deadline" in found[1], found[1]
    finally:
        reset(sock)


# ------------------------------------------- `run` against hosts that misbehave


class FakeHost:
    """A tiny TCP "host" on 127.0.0.1 that treats every connection with `behaviour(conn, n)`
    (n = how many connections came before)."""

    def __init__(self, behaviour: Callable[[socket.socket, int], None]) -> None:
        self.behaviour = behaviour
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        self.errors: list[str] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        count = 0
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn, count), daemon=True)
            self._threads.append(thread)
            thread.start()
            count += 1

    def _serve(self, conn: socket.socket, n: int) -> None:
        try:
            self.behaviour(conn, n)
        except OSError:
            pass  # the client went away
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if not self.stop.is_set():
                with contextlib.suppress(OSError):
                    conn.close()

    def __enter__(self) -> FakeHost:
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.listener.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.close()
        for thread in self._threads:
            thread.join(timeout=2)


def guest_messages(conn: socket.socket, stop_after: float = 10.0) -> Iterator[protocol.Message]:
    """What the client sends, message by message, until it closes."""
    decoder = protocol.Decoder(accept=protocol.GUEST_TO_HOST, skip_unknown=True)
    conn.settimeout(stop_after)
    while True:
        while (msg := decoder.next_message()) is not protocol.NEED_DATA:
            yield msg
        n = conn.recv_into(decoder.buffer())
        if n == 0:
            return
        decoder.commit(n)


def pong_then(on_frame: Callable[[socket.socket, FrameRequest], None]) -> Callable[[socket.socket, int], None]:
    """Answers PING properly; FRAME_REQUESTs get `on_frame`."""
    def behaviour(conn: socket.socket, n: int) -> None:
        for msg in guest_messages(conn):
            if isinstance(msg, protocol.Ping):
                conn.sendall(protocol.encode(protocol.Pong(msg.session_id)))
            elif isinstance(msg, FrameRequest):
                on_frame(conn, msg)
    return behaviour


def answer_each(reply: Callable[[protocol.Message], bytes], close: bool = False) -> Callable[[socket.socket, int], None]:
    def behaviour(conn: socket.socket, n: int) -> None:
        for msg in guest_messages(conn):
            conn.sendall(reply(msg))
            if close:
                return
    return behaviour


def close_after(nbytes: int) -> Callable[[socket.socket, int], None]:
    def behaviour(conn: socket.socket, n: int) -> None:
        got = 0
        conn.settimeout(5)
        while got < nbytes:
            chunk = conn.recv(nbytes - got)
            if not chunk:
                break
            got += len(chunk)
    return behaviour


def hang(conn: socket.socket, n: int) -> None:
    for _ in guest_messages(conn):
        pass


def garbage(msg: protocol.Message) -> bytes:
    data = random.Random(SEED).randbytes(4096)
    return b"\x00GARBAGE" + data  # never "HXFR"


def silent_after_first_connection(conn: socket.socket, n: int) -> None:
    for msg in guest_messages(conn):
        if n == 0 and isinstance(msg, protocol.Ping):
            conn.sendall(protocol.encode(protocol.Pong(msg.session_id)))


def send_frame_then_close(claimed: int, sent: int) -> Callable[[socket.socket, FrameRequest], None]:
    def on_frame(conn: socket.socket, req: FrameRequest) -> None:
        conn.sendall(header(MsgType.FRAME_RESPONSE, claimed) + bytes(sent))
        conn.shutdown(socket.SHUT_WR)
    return on_frame


def close_mid_request(conn: socket.socket, n: int) -> None:
    """The PING connection is answered; on the next one, the FRAME_REQUEST's header and a
    little of its pixels are read, then the connection is reset."""
    if n == 0:
        return pong_then(lambda c, r: None)(conn, n)
    conn.settimeout(5)
    seen = 0
    while seen < 100:
        chunk = conn.recv(100 - seen)
        if not chunk:
            return
        seen += len(chunk)
    reset(conn)


# (behaviour, the probe that must fail, the failure id it must name)
MISBEHAVING_HOSTS = {
    "answers garbage": (answer_each(garbage), "stream.ping", "stream-bad-magic"),
    "answers HXFR then an unknown type": (answer_each(lambda m: header(0x42, 0)), "stream.ping", "stream-protocol-error"),
    "answers PING with SUBSCRIBE_RESP": (answer_each(lambda m: protocol.encode(protocol.SubscribeResponse(1))),
                                         "stream.ping", "stream-protocol-error"),
    "answers a PONG of the wrong size": (answer_each(lambda m: header(MsgType.PONG, 4) + bytes(4)),
                                         "stream.ping", "stream-protocol-error"),
    "closes at once": (close_after(0), "stream.ping", "stream-closed"),
    "closes after 5 bytes": (close_after(5), "stream.ping", "stream-closed"),
    "closes after the PING": (close_after(12), "stream.ping", "stream-closed"),
    "sends half a PONG and closes": (answer_each(lambda m: protocol.encode(protocol.Pong(1))[:7], close=True),
                                     "stream.ping", "stream-closed"),
    "accepts and hangs": (hang, "stream.ping", "stream-no-reply"),
    "answers frames with garbage": (pong_then(lambda c, r: c.sendall(garbage(r))), "stream.exchange", "stream-bad-magic"),
    "answers frames with a broken NAL table": (
        pong_then(lambda c, r: c.sendall(header(MsgType.FRAME_RESPONSE, 32) + struct.pack("<qqB3sI", 0, 0, 1, b"", 5)
                                         + struct.pack("<I", 4) + b"\0\0\0\x01")),
        "stream.exchange", "stream-protocol-error"),
    "answers frames with PONG": (pong_then(lambda c, r: c.sendall(protocol.encode(protocol.Pong(1)))),
                                 "stream.exchange", "stream-protocol-error"),
    "cuts its FRAME_RESPONSE short": (pong_then(send_frame_then_close(1000, 100)), "stream.exchange", "stream-closed"),
    "drops the connection mid-request": (close_mid_request, "stream.exchange", "stream-closed"),
    "ignores frames, answers PING (H4)": (pong_then(lambda c, r: None), "stream.exchange", "frame-request-ignored"),
    "goes silent after the first connection": (silent_after_first_connection, "stream.exchange", "stream-no-reply"),
}


def run_stream_probes(port: int, timeout: float = 1.0) -> tuple[dict, float]:
    # vsockenc's request path: these hosts misbehave on PING and FRAME_REQUEST.
    cfg = resolve({"side": "both", "host": "127.0.0.1", "topology": "tcp", "port": port, "timeout": timeout,
                   "frames": 2, "size": "64x48", "mode": "request"}, env={})
    work = runner.Runner(cfg, runner.select(["stream"], False), explicit={"stream"})
    # Only the fake host: socat or QEMU processes elsewhere on this machine (other test runs)
    # would otherwise be discovered and take precedence over --port.
    work.ctx.obs.__dict__["processes"] = []
    started = time.monotonic()
    report = work.run()
    return report.to_dict(), time.monotonic() - started


@pytest.mark.parametrize("name", list(MISBEHAVING_HOSTS))
def test_run_against_a_misbehaving_host_is_bounded_and_names_it(name):
    behaviour, failing_probe, failure_id = MISBEHAVING_HOSTS[name]
    timeout = 1.0
    with FakeHost(behaviour) as host:
        doc, wall = run_stream_probes(host.port, timeout)
    probes = {p["id"]: p for p in doc["probes"]}
    table = "\n".join(f"  {p['id']:<16} {p['status']:<8} {p['failure_id'] or '':<22} {p['summary'][:140]}"
                      for p in doc["probes"])
    assert doc["topology"]["listen_port"] == host.port, doc["topology"]
    assert not host.errors, host.errors
    assert probes[failing_probe]["status"] == "fail", table
    assert probes[failing_probe]["failure_id"] == failure_id, table
    if failing_probe == "stream.exchange":
        assert probes["stream.ping"]["status"] == "pass", table
    else:
        assert probes["stream.exchange"]["status"] == "blocked", table
    assert doc["diagnosis"]["root_cause"]["failure_id"] == failure_id, table
    # Each probe waits at most its timeout per reply, plus one PING to tell silence apart.
    assert wall < 2 + 4 * timeout, f"{wall:.1f} s against a host that {name}"


def test_cli_run_against_a_garbage_host_exits_1_with_json_and_no_traceback():
    with FakeHost(answer_each(garbage)) as host:
        started = time.monotonic()
        proc = run_cli("run", "stream", "--side", "both", "--host", "127.0.0.1", "--topology", "tcp",
                       "--port", str(host.port), "--timeout", "1", "--json", "-", timeout=60)
        wall = time.monotonic() - started
    assert "Traceback" not in proc.stderr + proc.stdout
    doc = json.loads(proc.stdout)
    # The named port is the path, whatever else listens on this machine.
    assert doc["topology"]["listen_port"] == host.port, doc["topology"]
    assert proc.returncode == 1, proc.stderr
    assert doc["diagnosis"]["root_cause"]["failure_id"] == "stream-bad-magic", proc.stderr
    assert wall < 15, f"{wall:.1f} s"
