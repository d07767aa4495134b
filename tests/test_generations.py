"""`serve --generation`: each host generation checked against its row of the table by a second,
independent client written here from the byte layouts alone (struct, not helixdiag's codec).

Real sockets, real libx264; every wait is short (idle timeouts are overridden, GOPs are the
table's 60 frames at 60 fps)."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from conftest import endpoint_of, running_server

from helixdiag.errors import ConfigError
from helixdiag.logscan import scan_qemu_log
from helixdiag.protocol import MsgType
from helixdiag.server import FrameServer, ServerConfig
from helixdiag.server.generations import GENERATIONS, STATIC, parse_picture

pytestmark = pytest.mark.timeout(60)

# ------------------------------------------------------------------ the independent client

HEADER = struct.Struct("<IBBHI")
MAGIC = 0x52465848
PING, PONG, FRAME_REQUEST, FRAME_RESPONSE = 0x10, 0x11, 0x01, 0x02
KEYFRAME_REQ, CONFIG_REQ, ENABLE, DISABLE, SCANOUT_RESP = 0x03, 0x04, 0x20, 0x21, 0x22
SUBSCRIBE, SUBSCRIBE_RESP, ERROR = 0x30, 0x31, 0xFF
NV12 = 0x3231564E
# The message a host answers with, for each one it answers.
REPLY = {PING: PONG, FRAME_REQUEST: FRAME_RESPONSE, ENABLE: SCANOUT_RESP, DISABLE: SCANOUT_RESP,
         SUBSCRIBE: SUBSCRIBE_RESP}


def pack(msg_type: int, body: bytes = b"", session: int = 0, flags: int = 0) -> bytes:
    return HEADER.pack(MAGIC, msg_type, flags, session, len(body)) + body


def subscribe(scanout: int) -> bytes:
    return pack(SUBSCRIBE, struct.pack("<I", scanout), session=scanout)


def enable(scanout: int, width: int = 160, height: int = 96) -> bytes:
    return pack(ENABLE, struct.pack("<IIII", scanout, width, height, 60))


def disable(scanout: int) -> bytes:
    return pack(DISABLE, struct.pack("<I", scanout))


def frame_request(resource: int = 0) -> bytes:
    # resource_id, width, height, format, stride, pts, duration, force_keyframe, reserved[7]
    return pack(FRAME_REQUEST, struct.pack("<IIIIIqqB7s", resource, 64, 32, NV12, 64, 0, -1, 1, b""), session=1)


def config_request(bitrate: int) -> bytes:
    return pack(CONFIG_REQ, struct.pack("<IIIIIBBB5s", 160, 96, bitrate, 60, 1, 66, 40, 1, b""))


MESSAGES = {
    "PING": pack(PING, session=7), "FRAME_REQUEST": frame_request(), "KEYFRAME_REQ": pack(KEYFRAME_REQ),
    "CONFIG_REQ": config_request(2_000_000), "ENABLE_SCANOUT": enable(3), "DISABLE_SCANOUT": disable(3),
    "SUBSCRIBE": subscribe(3),
}


class Raw:
    """A connection that reads whole messages by the header's payload_size."""

    def __init__(self, server, kind: str = "tcp") -> None:
        ep = endpoint_of(server, kind)
        if kind == "unix":
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(ep.path)
        else:
            self.sock = socket.create_connection((ep.host, ep.port), timeout=3)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _exactly(self, n: int, deadline: float) -> bytes:
        out = b""
        while len(out) < n:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError(f"closed after {len(out)} of {n} bytes")
            out += chunk
        return out

    def read(self, timeout: float = 3.0) -> tuple[int, int, bytes] | None:
        """(type, session, payload); None when nothing comes in `timeout`; EOFError on close."""
        deadline = time.monotonic() + timeout
        try:
            head = self._exactly(12, deadline)
        except TimeoutError:
            return None
        magic, msg_type, _, session, size = HEADER.unpack(head)
        assert magic == MAGIC, head.hex(" ")
        return msg_type, session, self._exactly(size, deadline + 3)

    def raw(self, n: int, timeout: float = 3.0) -> bytes:
        return self._exactly(n, time.monotonic() + timeout)

    def next_not_frame(self, timeout: float = 3.0) -> tuple[int, int, bytes] | None:
        while (msg := self.read(timeout)) is not None and msg[0] == FRAME_RESPONSE:
            pass
        return msg

    def frames(self, count: int, timeout: float = 3.0) -> list[dict]:
        out = []
        while len(out) < count:
            msg = self.read(timeout)
            assert msg is not None, f"only {len(out)} of {count} frames"
            if msg[0] == FRAME_RESPONSE:
                out.append(parse_frame(msg[2]))
        return out

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def parse_frame(payload: bytes) -> dict:
    """Like desktop-bridge: pts, dts, is_keyframe, 3 reserved, nal_count, then exactly one entry."""
    pts, dts, key, _, count = struct.unpack_from("<qqB3sI", payload)
    (size,) = struct.unpack_from("<I", payload, 24)
    data = payload[28:28 + size]
    assert count == 1 and 28 + size == len(payload), (count, size, len(payload))
    types = [nal[0] & 0x1F for nal in data.split(b"\0\0\0\1") if nal] if data[:4] == b"\0\0\0\1" else []
    return {"pts": pts, "keyframe": bool(key), "data": data, "nal_types": types}


def answer_to(msg: bytes, gen_name: str, server) -> tuple[int, int, bytes] | None:
    """What comes back for `msg` on a fresh connection, or None: a PING sent right behind it
    comes back first (nothing else was answered)."""
    with Raw(server, "unix" if gen_name == "h1" else "tcp") as c:
        if gen_name == "h1":  # one recv() is one message there: two messages need two sends
            c.send(msg)
            time.sleep(0.1)
            c.send(pack(PING, session=99))
        else:
            c.send(msg + pack(PING, session=99))
        pushed = msg[4] == SUBSCRIBE  # frames may follow a subscription: look past them
        first = c.next_not_frame() if pushed else c.read()
        assert first is not None
        return None if first[:2] == (PONG, 99) else first


def serve(gen_name: str, **config):
    config.setdefault("idle_timeout", None)  # the generation's
    if gen_name == "h1":
        config.setdefault("unix", [f"/tmp/hxd-gen-{threading.get_ident()}.sock"])
    return running_server(generation=GENERATIONS[gen_name], **config)


# ------------------------------------------------------------------ which messages are answered


@pytest.mark.parametrize("gen_name", list(GENERATIONS))
def test_each_generation_answers_what_its_row_says(gen_name):
    gen = GENERATIONS[gen_name]
    with serve(gen_name) as server:
        for name, msg in MESSAGES.items():
            t = MsgType[name]
            got = answer_to(msg, gen_name, server)
            if t in gen.answers:
                assert got is not None and got[0] == REPLY[t], (gen_name, name, got)
            elif t not in gen.understands and gen.unknown == "error":
                assert got is not None and got[0] == ERROR, (gen_name, name, got)
                assert struct.unpack_from("<i", got[2])[0] == -1
            else:
                assert got is None, (gen_name, name, got)
    # DISABLE is never answered by a real host; SUBSCRIBE always is, from H3 on.
    assert MsgType.DISABLE_SCANOUT not in gen.answers or gen.is_reference
    assert (MsgType.SUBSCRIBE in gen.answers) == (gen_name in ("reference", "h3", "h4", "h5"))
    assert (MsgType.FRAME_REQUEST in gen.answers) == (gen_name in ("reference", "h1", "h2", "h3"))


def test_the_wire_bytes_are_the_reference_vectors():
    with serve("h4", max_outputs=16) as server, Raw(server) as c:
        c.send(subscribe(3))
        assert c.raw(20).hex(" ") == "48 58 46 52 31 00 03 00 08 00 00 00 03 00 00 00 01 00 00 00"
        c.send(enable(3, 2560, 1440))
        resp = c.raw(84)
        assert resp[:32].hex(" ") == ("48 58 46 52 22 00 00 00 48 00 00 00 03 00 00 00 01 00 00 00 "
                                      "56 69 72 74 75 61 6c 2d 34 00 00 00")
        assert resp[32:] == bytes(52)
        for refused in (0, 16):  # id 0 is the console; ids stop below max_outputs
            c.send(enable(refused))
            resp = c.raw(84)
            assert resp[:20] == HEADER.pack(MAGIC, SCANOUT_RESP, 0, 0, 72) + struct.pack("<II", refused, 0)
        c.send(disable(3) + pack(PING))
        assert c.raw(12).hex(" ") == "48 58 46 52 11 00 00 00 00 00 00 00"  # DISABLE: no reply


# ------------------------------------------------------------------ transports and clients


def test_h1_takes_one_recv_as_one_message_and_answers_avcc(short_tmp):
    with pytest.raises(ConfigError, match="unix only"):
        with running_server(generation=GENERATIONS["h1"], tcp=[("127.0.0.1", 0)]):
            pass
    with running_server(generation=GENERATIONS["h1"], unix=[str(short_tmp / "h1.sock")]) as server:
        with Raw(server, "unix") as c:
            ping = pack(PING, session=5)
            c.send(ping[:5])
            time.sleep(0.2)
            c.send(ping[5:])
            for _ in range(2):  # each half is a garbled message of its own
                msg_type, _, body = c.read()
                assert msg_type == ERROR and struct.unpack_from("<i", body)[0] == -1
            c.send(b"XXXX" + bytes(8))  # bad magic: ERROR -1, and the connection stays
            assert c.read()[0] == ERROR
            c.send(ping)
            assert c.read()[:2] == (PONG, 5)
            c.send(frame_request())
            msg_type, _, body = c.read()
            frame = parse_frame(body)
            assert msg_type == FRAME_RESPONSE and frame["keyframe"]
            assert frame["data"][:4] != b"\0\0\0\1"  # AVCC: a big-endian length, not a start code
            (length,) = struct.unpack(">I", frame["data"][:4])
            assert frame["data"][4] & 0x1F not in (7, 8) and length < len(frame["data"])  # no SPS/PPS


def test_h2_serves_one_client_at_a_time_and_closes_on_bad_magic():
    with serve("h2") as server:
        first = Raw(server)
        first.send(pack(PING, session=1))
        assert first.read()[:2] == (PONG, 1)
        with Raw(server) as second:
            second.send(pack(PING, session=2))
            assert second.read(timeout=0.5) is None  # waits in the backlog
            first.close()
            assert second.read()[:2] == (PONG, 2)
            second.send(b"XXXX" + bytes(8))
            with pytest.raises(EOFError):  # logged and closed, no ERROR
                second.read()


def test_h4_has_sixteen_slots_and_closes_the_seventeenth_without_a_word():
    with serve("h4") as server:
        clients = [Raw(server) for _ in range(16)]
        try:
            for i, c in enumerate(clients):
                c.send(pack(PING, session=i))
            assert [c.read()[:2] for c in clients] == [(PONG, i) for i in range(16)]
            with Raw(server) as extra, pytest.raises(EOFError):
                extra.read()
        finally:
            for c in clients:
                c.close()


@pytest.mark.parametrize(("gen_name", "seconds"), [("h2", 30), ("h3", 600), ("h4", 60), ("h5", None),
                                                   ("reference", 30)])
def test_idle_close_is_the_generations_and_overridable(gen_name, seconds):
    with serve(gen_name) as server:
        assert server.config.idle_timeout == seconds
    with serve(gen_name, idle_timeout=0.4) as server, Raw(server) as c:
        if not GENERATIONS[gen_name].scanout_mode:
            c.send(pack(PING))
            assert c.read()[0] == PONG
            started = time.monotonic()
            with pytest.raises(EOFError):
                c.read(timeout=3)
            assert time.monotonic() - started < 2.5
            return
        c.send(subscribe(2))
        assert c.next_not_frame()[0] == SUBSCRIBE_RESP
        started = time.monotonic()
        if gen_name == "reference":  # serve spares subscribers
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                c.read(timeout=0.1)  # frames, never EOF
            return
        with pytest.raises(EOFError):  # the real hosts drop a silent subscriber (desktop-bridge is one)
            c.next_not_frame(timeout=3)
        assert time.monotonic() - started < 2.5


# ------------------------------------------------------------------ the scanout frame path


def test_frames_only_for_an_enabled_scanout_below_max_outputs():
    with serve("h4", max_outputs=4, fps=60) as server, Raw(server) as sub, Raw(server) as manager:
        sub.send(subscribe(2))
        assert sub.read()[0] == SUBSCRIBE_RESP
        assert sub.read(timeout=0.4) is None  # subscribed, but nothing draws on scanout 2
        for refused in (0, 4):
            manager.send(enable(refused))
            assert struct.unpack_from("<II", manager.read()[2]) == (refused, 0)
        manager.send(enable(2, 160, 96))
        assert struct.unpack_from("<II", manager.read()[2]) == (2, 1)
        first = sub.frames(3)
        assert first[0]["keyframe"] and first[0]["nal_types"][:2] == [7, 8]  # the encoder's first frame
        assert first[0]["pts"] == 0 and first[1]["pts"] == 16_666_667
        manager.send(disable(2))
        time.sleep(0.1)
        while sub.read(timeout=0.3) is not None:  # what was in flight
            pass
        assert sub.read(timeout=0.4) is None  # disabled: nothing drawn, nothing pushed


def test_a_static_picture_sends_nothing_until_h5_re_encodes_it():
    with serve("h4", picture=STATIC) as server, Raw(server) as c:
        c.send(enable(1) + subscribe(1))
        assert {c.read()[0], c.read()[0]} == {SCANOUT_RESP, SUBSCRIBE_RESP}
        assert c.read(timeout=0.6) is None
        c.send(pack(PING, session=4))
        assert c.read()[:2] == (PONG, 4)  # alive, subscribed, quiet
    with serve("h5", picture=parse_picture("moving:0.5,static:60"), fps=30) as server, Raw(server) as c:
        c.send(enable(1) + subscribe(1))
        arrivals = []
        deadline = time.monotonic() + 2.2
        while time.monotonic() < deadline:
            msg = c.read(timeout=0.2)
            if msg is not None and msg[0] == FRAME_RESPONSE:
                arrivals.append(time.monotonic())
    moving = [t for t in arrivals if t - arrivals[0] < 0.3]
    keepalive = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False) if b - a > 0.2]
    assert len(moving) >= 5, arrivals
    assert len(keepalive) >= 2 and all(0.35 < gap < 1.0 for gap in keepalive), keepalive


def test_keyframes_as_the_real_encoder_makes_them_a_late_subscriber_joins_mid_gop():
    with serve("h4", fps=60) as server, Raw(server) as first, Raw(server) as late:
        first.send(enable(1) + subscribe(1))
        frames = first.frames(5)
        assert [f["keyframe"] for f in frames] == [True, False, False, False, False]
        late.send(subscribe(1) + pack(KEYFRAME_REQ, session=1))  # KEYFRAME_REQ changes nothing
        joined = late.frames(70, timeout=3)
        keys = [i for i, f in enumerate(joined) if f["keyframe"]]
        assert keys and keys[0] > 0, keys  # P-frames first: the next IDR is the GOP's
        assert (joined[keys[0]]["pts"] // 16_666_667) % 60 == 0  # frame 60 of the encoder
        assert joined[keys[0]]["nal_types"][:2] == [7, 8]  # with SPS and PPS


def test_serve_forces_a_keyframe_for_each_new_subscriber():
    with serve("reference", fps=60) as server, Raw(server) as first, Raw(server) as late:
        first.send(subscribe(1))
        first.frames(5)
        late.send(subscribe(1))
        assert late.frames(1)[0]["keyframe"]


def test_a_different_bitrate_makes_a_new_encoder_whose_first_frame_is_an_idr():
    with serve("h4", fps=60) as server, Raw(server) as c:
        c.send(enable(1) + subscribe(1))
        c.frames(5)
        c.send(config_request(3_000_000))
        after = c.frames(6)
        assert any(f["keyframe"] for f in after[:4]), [f["keyframe"] for f in after]


# ------------------------------------------------------------------ faults on the push path


def test_double_init_hides_subscribers_and_logs_it_like_the_host():
    from helixdiag.faults import Fault

    lines: list[str] = []
    server = FrameServer(ServerConfig(tcp=[("127.0.0.1", 0)], size=(160, 96), generation=GENERATIONS["h4"],
                                      fault=Fault("double-init")), log=lines.append)
    server.start()
    try:
        with Raw(server) as c:
            c.send(enable(1) + subscribe(1))
            c.read(), c.read()
            assert c.read(timeout=0.5) is None
    finally:
        server.stop()
    summary = scan_qemu_log(lines)
    assert "scanout-no-frames" in summary.failure_ids, lines  # a subscriber the frame path cannot see
    assert any("NO_SUBSCRIBER" in line for line in lines), lines
