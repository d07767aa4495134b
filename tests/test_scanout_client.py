"""`send --mode scanout` behaves like desktop-bridge: SUBSCRIBE, an optional CONFIG_REQ, a frame
before SUBSCRIBE_RESP tolerated, exactly one NAL entry read per frame; and it says what a
subscriber saw — time to the first keyframe, frames/s, gaps, why the stream ended — in scanout
terms. Real sockets, real serve generations, real libx264."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from conftest import endpoint_of, running_server

from helixdiag import net
from helixdiag.client import ExchangeOptions, exchange
from helixdiag.encoders import open_encoder
from helixdiag.faults import Fault
from helixdiag.frames import SyntheticSource
from helixdiag.protocol import PixelFormat
from helixdiag.server import FrameServer, ServerConfig
from helixdiag.server.generations import GENERATIONS, STATIC, parse_picture

pytestmark = pytest.mark.timeout(30)

HEADER = struct.Struct("<IBBHI")
MAGIC = 0x52465848


def enable(server, scanout: int = 1) -> None:
    with net.connect(endpoint_of(server), 2.0) as sock:
        sock.sendall(HEADER.pack(MAGIC, 0x20, 0, 0, 16) + struct.pack("<IIII", scanout, 160, 96, 60))
        assert len(sock.recv(84)) > 0


def h4(**kw):
    kw.setdefault("idle_timeout", None)
    return running_server(generation=GENERATIONS[kw.pop("gen", "h4")], size=(160, 96), **kw)


def watch(server, **kw):
    kw.setdefault("timeout", 1.0)
    return exchange(ExchangeOptions(endpoint=endpoint_of(server), mode="scanout", frames=None, size=(160, 96),
                                    **kw))


def test_a_static_picture_is_subscribed_with_no_frames_not_a_failure():
    with h4(picture=STATIC) as server:
        enable(server)
        result = watch(server, duration=1.0)
    doc = result.to_dict()
    assert result.status == "pass", doc["findings"]
    assert doc["scanout"]["subscribed"] is True and result.frames_received == 0
    assert doc["scanout"]["ended"] == "subscribed, no frames while the picture is static"


def test_counting_frames_says_the_picture_moves_so_silence_fails():
    with h4(picture=STATIC) as server:
        result = exchange(ExchangeOptions(endpoint=endpoint_of(server), mode="scanout", frames=5, timeout=0.5))
    assert result.primary.failure_id == "stream-no-reply"
    assert "static" in result.primary.message and result.pong is True


def test_a_late_subscriber_reports_its_wait_for_the_first_keyframe():
    with h4(fps=60) as server:
        enable(server)
        first = threading.Thread(target=watch, args=(server,), kwargs={"duration": 2.5}, daemon=True)
        first.start()
        time.sleep(0.3)  # the encoder has made its first IDR for the first subscriber
        late = exchange(ExchangeOptions(endpoint=endpoint_of(server), mode="scanout", frames=60, timeout=1.0))
        first.join()
    doc = late.to_dict()["scanout"]
    assert late.status == "pass", late.to_dict()["findings"]
    assert doc["frames_before_keyframe"] > 0  # joined mid-GOP: P-frames until the GOP's next IDR
    assert doc["first_keyframe_ms"] > doc["first_frame_ms"] >= 0
    assert late.frames_decoded == late.frames_received - doc["frames_before_keyframe"]


def test_an_idle_close_is_the_reason_the_stream_ended():
    with h4(idle_timeout=0.5, fps=30) as server:
        enable(server)
        result = watch(server, duration=3.0)
    assert result.primary.failure_id == "stream-closed"
    ended = result.to_dict()["scanout"]["ended"]
    assert ended.startswith("closed by the host 0.") and "after our last message" in ended, ended
    assert result.elapsed_s < 2.5


def test_bad_magic_on_a_pushed_frame_ends_the_stream_and_says_so():
    with h4(fault=Fault("bad-magic")) as server:
        enable(server)
        result = watch(server, duration=2.0)
    assert result.primary.failure_id == "stream-bad-magic"
    assert result.to_dict()["scanout"]["ended"].startswith("bad magic")


def test_gaps_are_counted_h5_keeps_a_static_picture_alive():
    with h4(gen="h5", picture=parse_picture("moving:0.4,static:60"), fps=30) as server:
        enable(server)
        result = watch(server, duration=1.8)
    doc = result.to_dict()["scanout"]
    assert result.status == "pass", result.to_dict()["findings"]
    assert doc["gaps"] >= 2 and 350 < doc["longest_gap_ms"] < 1200, doc


def test_config_req_carries_the_bitrate_like_desktop_bridge():
    lines: list[str] = []
    server = FrameServer(ServerConfig(tcp=[("127.0.0.1", 0)], size=(160, 96), generation=GENERATIONS["h4"]),
                         log=lines.append)
    server.start()
    try:
        enable(server)
        result = watch(server, duration=0.5, bitrate=2_000_000)
    finally:
        server.stop()
    assert result.status == "pass"
    assert any("CONFIG_REQ: scanout=1 bitrate=2000000" in line for line in lines), lines


def test_one_nal_entry_is_read_per_frame_and_a_frame_before_subscribe_resp_is_tolerated():
    """A hand-made host: a pushed frame before SUBSCRIBE_RESP, then frames with two entries."""
    enc, _ = open_encoder("x264", width=64, height=48, gop=30)
    src = SyntheticSource(64, 48, PixelFormat.NV12)
    aus = [enc.encode(src.frame(i), src.layout).data for i in range(4)]
    listener = socket.create_server(("127.0.0.1", 0))

    def frame(au: bytes, extra: bytes = b"") -> bytes:
        entries = struct.pack("<I", len(au)) + au + (struct.pack("<I", len(extra)) + extra if extra else b"")
        body = struct.pack("<qqB3sI", 0, 0, 1 if au is aus[0] else 0, b"", 2 if extra else 1) + entries
        return HEADER.pack(MAGIC, 0x02, 0, 1, len(body)) + body

    def host() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(16)
            conn.sendall(frame(aus[0]))  # pushed before the answer (the host's race)
            conn.sendall(HEADER.pack(MAGIC, 0x31, 0, 1, 8) + struct.pack("<II", 1, 1))
            for au in aus[1:]:
                conn.sendall(frame(au, b"\0\0\0\1junk"))
            time.sleep(0.5)

    threading.Thread(target=host, daemon=True).start()
    port = listener.getsockname()[1]
    result = exchange(ExchangeOptions(endpoint=net.Endpoint("tcp", host="127.0.0.1", port=port), mode="scanout",
                                      frames=4, timeout=1.0, size=(64, 48)))
    listener.close()
    assert result.frames_before_subscribe_resp == 1
    assert result.frames_decoded == 4  # the junk second entries were never read
    assert set(result.findings) == {"stream-nal-count"}
