"""`serve` and `send` against each other over real TCP and Unix sockets."""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
import threading
import time

import pytest
from conftest import endpoint_of, helixdiag_cmd, require_tool, run_cli, running_server

from helixdiag import net, protocol
from helixdiag.client import ExchangeOptions, exchange, ping
from helixdiag.errors import ConfigError
from helixdiag.faults import FAULT_KINDS, Fault
from helixdiag.protocol import ErrorCode, PixelFormat
from helixdiag.server import FrameServer, ServerConfig

pytestmark = pytest.mark.timeout(90)


def run_exchange(endpoint, **kw):
    kw.setdefault("frames", 6)
    kw.setdefault("size", (320, 240))
    kw.setdefault("timeout", 3.0)
    return exchange(ExchangeOptions(endpoint=endpoint, **kw))


def raw_connect(server, kind="tcp", timeout=3.0) -> socket.socket:
    return net.connect(endpoint_of(server, kind), timeout)


def read_message(sock: socket.socket, timeout: float = 3.0):
    dec = protocol.Decoder()
    sock.settimeout(timeout)
    while True:
        msg = dec.next_message()
        if msg is not protocol.NEED_DATA:
            return msg
        n = sock.recv_into(dec.buffer())
        if n == 0:
            raise EOFError
        dec.commit(n)


# ---------------------------------------------------------------- request mode


@pytest.mark.parametrize("fmt", [PixelFormat.NV12, PixelFormat.BGRA8888, PixelFormat.RGBA8888])
@pytest.mark.parametrize("size", [(320, 240), (641, 361), (1366, 768)])
def test_request_mode_every_format_and_size(fmt, size):
    with running_server() as server:
        result = run_exchange(endpoint_of(server), size=size, format=fmt, frames=4)
    assert result.status == "pass", result.to_dict()["findings"]
    assert result.frames_received == 4
    assert result.frames_decoded == 4
    assert result.coded_size == (size[0] + size[0] % 2, size[1] + size[1] % 2)  # 4:2:0 crops in steps of 2
    assert min(result.psnr_db) > 30


def test_request_mode_over_unix_socket(short_tmp):
    path = str(short_tmp / "hfe.sock")
    with running_server(unix=[path]) as server:
        assert os.stat(path).st_mode & 0o077 == 0  # owner-only
        result = run_exchange(endpoint_of(server, "unix"), frames=5)
    assert result.status == "pass", result.to_dict()["findings"]
    assert not os.path.exists(path), "serve removes the socket it created"


def test_keyframes_first_and_forced():
    with running_server(gop=1000) as server:
        result = run_exchange(endpoint_of(server), frames=9, keyframe_interval=4)
    assert result.status == "pass"
    assert result.keyframes == 3  # frames 0, 4, 8


@pytest.mark.parametrize("fault_name", sorted(k.name for k in FAULT_KINDS.values() if "request" in k.modes))
def test_every_fault_is_diagnosed_as_its_failure_id(fault_name):
    value = {"error": -5, "slow": 150}.get(fault_name)
    fault = Fault(fault_name, value)
    with running_server(fault=fault) as server:
        result = run_exchange(endpoint_of(server), frames=3, timeout=1.0)
    assert fault.expected_failure in result.findings, result.to_dict()["findings"]
    assert result.primary.failure_id == fault.expected_failure
    if fault_name == "error":
        assert result.findings["encoder-error"].evidence["code"] == -5


@pytest.mark.parametrize("fault_name", sorted(k.name for k in FAULT_KINDS.values() if "scanout" in k.modes))
def test_every_scanout_fault_is_diagnosed_by_a_subscriber_waiting_for_frames(fault_name):
    """Counting frames (--frames) says the picture moves: a host that pushes none fails."""
    fault = Fault(fault_name, 0.3 if fault_name == "drop-after" else None)
    with running_server(fault=fault, fps=30) as server:
        result = run_exchange(endpoint_of(server), mode="scanout", frames=20, timeout=1.0)
    assert result.primary is not None and result.primary.failure_id == fault.expected_failure, \
        result.to_dict()["findings"]


def test_hang_and_ignore_are_told_apart_by_ping():
    with running_server(fault=Fault("hang")) as server:
        hung = run_exchange(endpoint_of(server), frames=1, timeout=0.5)
    with running_server(fault=Fault("ignore-frame-request")) as server:
        ignoring = run_exchange(endpoint_of(server), frames=1, timeout=0.5)
    assert hung.pong is False and "stream-no-reply" in hung.findings
    assert ignoring.pong is True and "frame-request-ignored" in ignoring.findings


def test_request_without_pixels_resource_zero_gets_the_console():
    with running_server() as server, raw_connect(server) as sock:
        req = protocol.FrameRequest(width=0, height=0, format=0, stride=0, resource_id=0)
        sock.sendall(protocol.encode(req))
        reply = read_message(sock)
    assert isinstance(reply, protocol.FrameResponse)
    assert reply.is_keyframe and reply.nal_count == 1
    assert bytes(reply.nals[0][:4]) == b"\0\0\0\1"


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (protocol.FrameRequest(64, 32, PixelFormat.NV12, 64, resource_id=7), ErrorCode.RESOURCE_NOT_FOUND),
        (protocol.FrameRequest(64, 32, 0x11223344, 64, pixels=b"\0" * 3072), ErrorCode.INVALID_MSG),
        (protocol.FrameRequest(64, 32, PixelFormat.NV12, 64, pixels=b"\0" * 100), ErrorCode.INVALID_MSG),
        (protocol.FrameRequest(9000, 32, PixelFormat.NV12, 9000, pixels=b"\0" * 10), ErrorCode.INVALID_MSG),
    ],
    ids=["resource-not-found", "unknown-format", "short-pixels", "too-wide"],
)
def test_bad_requests_get_an_error_never_silence(request_, code):
    with running_server() as server, raw_connect(server) as sock:
        sock.sendall(protocol.encode(request_))
        reply = read_message(sock)
        assert isinstance(reply, protocol.ErrorMessage)
        assert reply.code == code
        # The connection stays usable, like the real host after an ERROR.
        sock.sendall(protocol.encode(protocol.Ping(9)))
        assert read_message(sock) == protocol.Pong(9)


def test_control_messages():
    with running_server() as server, raw_connect(server) as sock:
        sock.sendall(protocol.encode(protocol.EnableScanout(1, 1920, 1080, 60)))
        resp = read_message(sock)
        assert resp == protocol.ScanoutResponse(1, True, "Virtual-2", 0)
        sock.sendall(protocol.encode(protocol.DisableScanout(1)))
        assert isinstance(read_message(sock), protocol.ScanoutResponse)
        # KEYFRAME_REQ and CONFIG_REQ are never acknowledged: the next reply is the PONG.
        sock.sendall(protocol.encode(protocol.KeyframeRequest(1)))
        sock.sendall(protocol.encode(protocol.ConfigRequest(1920, 1080, 4_000_000)))
        sock.sendall(protocol.encode(protocol.Ping(3)))
        assert read_message(sock) == protocol.Pong(3)


def test_bad_magic_from_client_gets_error_and_close():
    with running_server() as server, raw_connect(server) as sock:
        sock.sendall(b"XXXX" + bytes(8))
        reply = read_message(sock)
        assert isinstance(reply, protocol.ErrorMessage) and reply.code == ErrorCode.INVALID_MSG
        with pytest.raises(EOFError):
            read_message(sock)


def test_over_limit_payload_rejected_without_reading_it():
    with running_server(max_payload=1_000_000) as server, raw_connect(server) as sock:
        header = struct.pack("<IBBHI", protocol.MAGIC, protocol.MsgType.FRAME_REQUEST,
                             protocol.FLAG_PIXEL_DATA, 1, 0xFFFFFFFF)
        sock.sendall(header)
        reply = read_message(sock)
        assert isinstance(reply, protocol.ErrorMessage) and reply.code == ErrorCode.INVALID_MSG
        assert "too-large" in reply.message
        with pytest.raises((EOFError, ConnectionResetError)):
            read_message(sock)
        assert server.stats.snapshot()["bytes_in"] == 12


# ---------------------------------------------------------------- clients


def test_sixteen_clients_at_once_and_the_seventeenth_is_refused():
    with running_server() as server:
        socks = [raw_connect(server) for _ in range(16)]
        try:
            for i, s in enumerate(socks):
                s.sendall(protocol.encode(protocol.Ping(i)))
            assert [read_message(s) for s in socks] == [protocol.Pong(i) for i in range(16)]
            extra = raw_connect(server)
            reply = read_message(extra)
            assert isinstance(reply, protocol.ErrorMessage)
            assert "slot" in reply.message
            extra.close()
            assert server.stats.snapshot()["clients_rejected"] == 1
        finally:
            for s in socks:
                s.close()


def test_half_open_client_does_not_block_a_new_one():
    with running_server(idle_timeout=1.0) as server:
        stuck = raw_connect(server)
        stuck.sendall(protocol.encode(protocol.Ping(1))[:5])  # half a header, then silence
        try:
            result = run_exchange(endpoint_of(server), frames=3)
            assert result.status == "pass"
            # …and the silent one is dropped after its idle timeout.
            deadline = time.monotonic() + 5
            while server.stats.snapshot()["clients_now"] > 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.stats.snapshot()["clients_now"] == 0
        finally:
            stuck.close()


# ---------------------------------------------------------------- scanout mode


def test_scanout_pushes_to_every_subscriber():
    with running_server(fps=30) as server:
        a = run_exchange(endpoint_of(server), mode="scanout", frames=10)
        b = run_exchange(endpoint_of(server), mode="scanout", frames=10)
    for result in (a, b):
        assert result.status == "pass", result.to_dict()["findings"]
        assert result.frames_received == 10
        assert result.frames_decoded >= 9
        assert result.coded_size == (320, 240)


def test_slow_subscriber_does_not_slow_the_others():
    # All-keyframe, high-bitrate frames (~140 kB) fill the stalled peer's buffers in ~1 s.
    with running_server(fps=30, size=(640, 360), gop=1, bitrate=50_000_000) as server:
        stalled = raw_connect(server)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(protocol.encode(protocol.Subscribe(1)))
        time.sleep(1.5)  # never read: its buffers fill, its frames are dropped
        try:
            healthy = run_exchange(endpoint_of(server), mode="scanout", duration=2.0, size=(640, 360))
        finally:
            stalled.close()
        dropped = server.stats.snapshot()["frames_dropped"]
    assert healthy.status == "pass", healthy.to_dict()["findings"]
    assert healthy.fps > 22, f"healthy subscriber got {healthy.fps:.1f} fps with a stalled neighbour"
    assert dropped > 0


# ---------------------------------------------------------------- Unix path safety


def test_live_socket_is_refused(short_tmp):
    path = str(short_tmp / "live.sock")
    with running_server(unix=[path]), pytest.raises(ConfigError, match="live socket"):
        with running_server(unix=[path]):
            pass


def test_stop_right_after_start_is_clean(short_tmp, monkeypatch):
    """stop() racing the acceptor's start-up must not raise in its thread (closed listener)."""
    raised = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_value))
    for i in range(30):
        server = FrameServer(ServerConfig(tcp=[("127.0.0.1", 0)], unix=[str(short_tmp / f"{i}.sock")],
                                          size=(64, 64)))
        server.start()
        server.stop()
        assert not server._acceptor.is_alive()
        assert not os.path.exists(short_tmp / f"{i}.sock")
    assert raised == []


def test_regular_file_is_refused_and_left_intact(short_tmp):
    path = short_tmp / "not-a-socket.sock"
    path.write_bytes(b"precious\n")
    with pytest.raises(ConfigError, match="not a socket"):
        with running_server(unix=[str(path)]):
            pass
    assert path.read_bytes() == b"precious\n"


def test_directory_is_refused(short_tmp):
    with pytest.raises(ConfigError, match="not a socket"):
        with running_server(unix=[str(short_tmp)]):
            pass
    assert short_tmp.is_dir()


def test_stale_socket_is_taken_over(short_tmp):
    path = str(short_tmp / "stale.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)
    dead.close()  # the file stays, nobody listens: stale
    with running_server(unix=[path]) as server:
        assert ping(endpoint_of(server, "unix"), 2.0).ok


# ---------------------------------------------------------------- the CLI, end to end


def start_serve_cli(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(helixdiag_cmd("serve", *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("listening "):
            return proc, line.split()[1]
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"serve did not start: {proc.stderr.read()}")


def test_cli_serve_and_send_with_json_and_third_party_decoders(tmp_path):
    ffprobe = require_tool("ffprobe")
    gst = require_tool("gst-launch-1.0")
    stats_path = tmp_path / "stats.json"
    proc, url = start_serve_cli("--tcp", "127.0.0.1:0", "--stats-json", str(stats_path))
    try:
        h264_path = tmp_path / "out.h264"
        res = run_cli("send", "--to", url, "--frames", "30", "--size", "640x360",
                      "--save", str(h264_path), "--json", "-")
        assert res.returncode == 0, res.stderr
        doc = json.loads(res.stdout)  # stdout holds only JSON
        assert doc["status"] == "pass" and doc["frames"]["received"] == 30
        assert doc["latency_ms"]["p50"] > 0
    finally:
        proc.send_signal(2)
        proc.wait(timeout=10)
    assert json.loads(stats_path.read_text())["frames_out"] == 30

    probe = subprocess.run(
        [ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames,width,height,codec_name", "-of", "json", str(h264_path)],
        capture_output=True, text=True, timeout=30)
    stream = json.loads(probe.stdout)["streams"][0]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 640, 360)
    assert int(stream["nb_read_frames"]) == 30

    gst_run = subprocess.run(
        [gst, "-v", "filesrc", f"location={h264_path}", "!", "h264parse", "!", "avdec_h264",
         "!", "fakesink", "silent=false"], capture_output=True, text=True, timeout=30)
    assert gst_run.returncode == 0, gst_run.stderr
    assert len(re.findall(r"last-message = chain", gst_run.stdout)) == 30


class Lines:
    """A process's output lines as they arrive, read by a thread so every wait is bounded."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait(self, text: str, timeout: float = 15.0, count: int = 1) -> list[str]:
        """The lines holding `text`, once there are `count` of them (fewer after timeout)."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.matching(text)) >= count, timeout)
            return self.matching(text)

    def matching(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]


def test_cli_serve_logs_why_each_client_left():
    proc, url = start_serve_cli("--tcp", "127.0.0.1:0", "--size", "320x240", "--fps", "30")
    out = Lines(proc.stdout)
    try:
        # A vsockenc-like client and a subscriber that read what they wanted and leave.
        assert run_cli("send", "--to", url, "--frames", "3", "--size", "320x240").returncode == 0
        assert run_cli("send", "--to", url, "--mode", "scanout", "--duration", "1",
                       "--size", "320x240").returncode == 0
        # A subscriber that leaves with pushed frames unread: its kernel resets the connection.
        with net.connect(net.parse_endpoint(url), 3.0) as sock:
            sock.sendall(protocol.encode(protocol.Subscribe(1)))
            assert isinstance(read_message(sock), protocol.SubscribeResponse)
            time.sleep(0.3)  # frames arrive and stay unread
        left = out.wait("disconnect ", count=3)
        assert len(left) == 3, out.lines
        assert "client disconnected (3 frames)" in left[0], left
        assert all("client disconnected" in line for line in left), left
        # A reset in the middle of a message is still called one.
        sock = net.connect(net.parse_endpoint(url), 3.0)
        sock.sendall(protocol.encode(protocol.Ping(1))[:5])
        time.sleep(0.3)  # the server has read the half header
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST
        left = out.wait("disconnect ", count=4)
        assert len(left) == 4 and "connection reset mid-message" in left[3], left
    finally:
        proc.send_signal(2)
        proc.wait(timeout=15)
    assert not out.matching("reset by peer") and not out.matching("peer closed"), out.lines


def test_cli_serve_shutdown_says_it_closed_the_client():
    proc, url = start_serve_cli("--tcp", "127.0.0.1:0", "--size", "320x240")
    out = Lines(proc.stdout)
    with net.connect(net.parse_endpoint(url), 3.0) as sock:
        try:
            sock.sendall(protocol.encode(protocol.Ping(7)))
            assert read_message(sock) == protocol.Pong(7)
        finally:
            proc.send_signal(2)
            proc.wait(timeout=15)
    assert out.wait("stopped:"), out.lines
    assert out.matching("closed by serve (shutting down) (0 frames)"), out.lines
    assert out.matching("stopped: 1 client, 0 frames,"), out.lines
    assert not out.matching("peer closed"), out.lines


def test_cli_scanout_send_against_a_static_h4_is_subscribed_with_no_frames():
    proc, url = start_serve_cli("--tcp", "127.0.0.1:0", "--generation", "h4", "--picture", "static",
                                "--size", "320x240")
    try:
        res = run_cli("send", "--to", url, "--mode", "scanout", "--duration", "1")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().splitlines()[-1] == "PASS subscribed, no frames while the picture is static"
    assert "sent" not in res.stdout, res.stdout  # a subscriber's summary, in scanout terms


def test_cli_serve_with_its_drm_manager_a_lease_and_a_subscriber(short_tmp):
    from helixdiag.drm_client import request_lease

    drm = str(short_tmp / "drm.sock")
    proc = subprocess.Popen(helixdiag_cmd("serve", "--tcp", "127.0.0.1:0", "--generation", "h4", "--size", "320x240",
                                          "--fps", "30", "--drm-manager", drm),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_COLOR": "1"})
    out = Lines(proc.stdout)
    try:
        url = out.wait("listening tcp://")[0].split()[1]
        assert out.matching(f"drm-manager unix://{drm}")
        with request_lease(drm, 320, 240) as lease:
            assert (lease.scanout_id, lease.connector) == (1, "Virtual-2")
            res = run_cli("send", "--to", url, "--mode", "scanout", "--frames", "10")
            assert res.returncode == 0, res.stdout + res.stderr
            assert res.stdout.strip().splitlines()[-1].startswith("PASS subscribed to scanout 1: 10 frames pushed")
        assert out.wait("[HELIX] Scanout 1 disabled")  # the lease ended: DISABLE reached serve
        assert out.matching("lease client disconnected, releasing scanout")
    finally:
        proc.send_signal(2)
        proc.wait(timeout=15)
    assert not os.path.exists(drm)


def test_cli_send_failure_exit_code_and_id():
    proc, url = start_serve_cli("--tcp", "127.0.0.1:0", "--fault", "no-sps")
    try:
        res = run_cli("send", "--to", url, "--frames", "3", "--size", "320x240")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert res.returncode == 1
    assert "stream-no-sps-pps" in res.stdout


def test_cli_send_refused_connection():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connect is refused
        res = run_cli("send", "--to", f"tcp://127.0.0.1:{port}", "--frames", "1")
    assert res.returncode == 1
    assert "stream-connect-failed" in res.stdout


@pytest.mark.parametrize(
    "args",
    [["send", "--to", "udp://x"], ["send", "--size", "0x5"], ["send", "--format", "yuv9"],
     ["serve", "--fault", "explode"], ["serve", "--tcp", "127.0.0.1:99999"],
     ["serve", "--generation", "h1", "--tcp", "127.0.0.1:0"], ["serve", "--picture", "wobbly"],
     ["serve", "--drm-manager-fault", "explode"], ["serve", "--fault", "drop-after=-1"]],
)
def test_cli_bad_input_is_exit_2_without_traceback(args):
    res = run_cli(*args, timeout=30)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
