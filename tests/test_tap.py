"""`helixdiag tap` between the reference guest (`send` / client.exchange, or a raw client that
hashes every byte) and the reference host (`serve`), on real TCP and Unix sockets; the
capture read back by the tap itself and by real tshark with the shipped dissector."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import endpoint_of, helixdiag_cmd, require_tool, run_cli, running_server

from helixdiag import net, protocol
from helixdiag.client import ExchangeOptions, exchange
from helixdiag.faults import FAULT_KINDS, parse_fault
from helixdiag.frames import SyntheticSource
from helixdiag.protocol import FrameRequest, FrameResponse, MsgType, PixelFormat
from helixdiag.tap import (
    CaptureWriter,
    Observer,
    Record,
    Tap,
    TapConfig,
    dissector_path,
    parse_address,
    render,
    replay,
)

pytestmark = pytest.mark.timeout(120)

HD = (1920, 1080)
UNIX_HOST_PORT = 15937  # what a Unix-socket host is recorded as (helixdiag.tap.pcap)


# ---------------------------------------------------------------------- helpers


@contextlib.contextmanager
def tapped(to: net.Endpoint, *, listen: str = "tcp://127.0.0.1:0", pcap: Path | None = None,
           reply_timeout: float = 3.0, limit: int | None = None):
    """A tap in this process; yields (listening endpoint, records). Records are complete
    once the block ends (the tap stopped and its observer finished)."""
    records: list[Record] = []
    capture = CaptureWriter(str(pcap), limit=limit) if pcap else None
    tap = Tap(TapConfig(listen=parse_address(listen, listen=True), to=to),
              Observer(records.append, reply_timeout=reply_timeout, capture=capture))
    endpoint = tap.start()
    try:
        yield endpoint, records
    finally:
        tap.stop()
        if capture:
            capture.close()


def settle(records: list[Record], conns: int = 1, timeout: float = 5.0) -> None:
    """Wait (bounded) until `conns` connections have their summary: the tap saw them end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and sum(r.kind == "summary" for r in records) < conns:
        time.sleep(0.02)


def messages(records: list[Record]) -> list[tuple[int, str, str]]:
    return [(r.conn, r.sender, r.type) for r in records if r.kind == "message"]


def flagged(records: list[Record], failure_id: str) -> list[Record]:
    return [r for r in records if failure_id in r.failure_ids]


def raw_requests(endpoint: net.Endpoint, frames: int, size=HD) -> dict:
    """vsockenc's conversation with raw sockets: the exact bytes sent and received, hashed."""
    source = SyntheticSource(*size, PixelFormat.NV12)
    sent, received = hashlib.sha256(), hashlib.sha256()
    nbytes = 0
    sock = net.connect(endpoint, 5.0)
    sock.settimeout(10.0)
    dec = protocol.Decoder()
    try:
        for i in range(frames):
            wire = protocol.encode(FrameRequest(*size, PixelFormat.NV12, source.layout.stride, pts=i,
                                                force_keyframe=i == 0, pixels=source.frame(i)))
            sent.update(wire)
            sock.sendall(wire)
            while (msg := dec.next_message()) is protocol.NEED_DATA:
                chunk = sock.recv(1 << 20)
                assert chunk, "the host closed early"
                received.update(chunk)
                nbytes += len(chunk)
                dec.feed(chunk)
            assert isinstance(msg, FrameResponse)
    finally:
        sock.close()
    return {"sent": sent.hexdigest(), "received": received.hexdigest(), "received_bytes": nbytes}


def tshark_messages(capture: Path, host_port: int) -> list[tuple[int, str, str]]:
    """(stream, sender, type) of every HXFR message real tshark finds with the shipped dissector."""
    tshark = require_tool("tshark")
    out = subprocess.run([tshark, "-n", "-r", str(capture), "-X", f"lua_script:{dissector_path()}", "-Y", "hxfr",
                          "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "hxfr.type",
                          "-E", "occurrence=a", "-E", "aggregator=,"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    found = []
    for line in out.splitlines():
        stream, port, types = line.split("\t")
        sender = "host" if int(port) == host_port else "guest"
        found += [(int(stream) + 1, sender, MsgType(int(t, 16)).name) for t in types.split(",") if t]
    return found


def tshark_stream_bytes(capture: Path, stream: int = 0) -> dict[str, bytes]:
    """Each direction's bytes of one TCP connection, as Wireshark reassembles them."""
    tshark = require_tool("tshark")
    out = subprocess.run([tshark, "-n", "-r", str(capture), "-q", "-z", f"follow,tcp,raw,{stream}"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    data = {"guest": bytearray(), "host": bytearray()}
    for line in out.splitlines():  # node 0 (the guest: it sent the SYN) flush left, node 1 indented
        text = line.strip()
        if not text or text.startswith("=") or ":" in text:
            continue
        data["host" if line.startswith("\t") else "guest"] += bytes.fromhex(text)
    return {k: bytes(v) for k, v in data.items()}


def endpoints(kind: str, server, short_tmp: Path) -> tuple[str, net.Endpoint]:
    """(tap's --listen, the server endpoint it relays to) for e.g. "tcp>unix"."""
    listen_kind, host_kind = kind.split(">")
    listen = "tcp://127.0.0.1:0" if listen_kind == "tcp" else f"unix:{short_tmp / 'tap.sock'}"
    return listen, endpoint_of(server, host_kind)


# ---------------------------------------------------------------------- request mode, byte for byte


@pytest.mark.parametrize("kind", ["tcp>tcp", "tcp>unix", "unix>tcp", "unix>unix"])
def test_request_mode_bytes_identical_to_a_direct_connection(kind, short_tmp):
    frames = 3
    with running_server(size=HD, unix=[str(short_tmp / "hfe.sock")], tcp=[("127.0.0.1", 0)]) as server:
        listen, host = endpoints(kind, server, short_tmp)
        direct = raw_requests(host, frames)
        before = server.stats.snapshot()["bytes_in"]
        pcap = short_tmp / "cap.pcapng"
        with tapped(host, listen=listen, pcap=pcap) as (ep, records):
            through = raw_requests(ep, frames)
            settle(records)
        host_got = server.stats.snapshot()["bytes_in"] - before
    assert through == direct  # what the guest sent, and every byte it got back
    assert host_got == frames * (12 + 44 + 1920 * 1080 * 3 // 2)  # the host got each request whole
    # Every message once, in order, numbered.
    expected = [(1, "guest", "FRAME_REQUEST"), (1, "host", "FRAME_RESPONSE")] * frames
    assert messages(records) == expected
    assert [r.n for r in records if r.kind == "message"] == list(range(1, 2 * frames + 1))
    replies = [r for r in records if r.type == "FRAME_RESPONSE"]
    assert [r.answers for r in replies] == [(n, "FRAME_REQUEST") for n in (1, 3, 5)]
    assert all(r.latency_ms and r.latency_ms > 0 for r in replies)
    assert replies[0].fields["keyframe"] and replies[0].fields["sps"]["width"] == 1920
    assert not [r for r in records if r.flags]
    summary = next(r.fields for r in records if r.kind == "summary")
    assert summary["messages"] == 2 * frames and summary["frames"] == frames
    assert summary["directions"]["guest>host"]["bytes"] == host_got
    assert summary["directions"]["host>guest"]["bytes"] == direct["received_bytes"]
    assert summary["latency_ms"]["count"] == frames
    # The capture: every byte, whole messages after reassembly, the same list read back.
    host_port = host.port if host.kind == "tcp" else UNIX_HOST_PORT
    replayed: list[Record] = []
    replay(str(pcap), Observer(replayed.append))
    assert [render.lines(r) for r in replayed] == [render.lines(r) for r in records]
    assert tshark_messages(pcap, host_port) == expected
    stream = tshark_stream_bytes(pcap)
    assert hashlib.sha256(stream["host"]).hexdigest() == direct["received"]
    assert len(stream["guest"]) == host_got


def test_every_byte_forwarded_even_when_it_is_not_hxfr():
    """Garbage both ways (a desync from the first byte): still forwarded byte for byte, the
    break flagged once per direction, decoding stops, forwarding goes on."""
    blob_up, blob_down = os.urandom(3_000_000), b"HXFX" + os.urandom(5_000_000)
    got = {}

    def host_side(listener: socket.socket) -> None:
        conn, _ = listener.accept()
        conn.settimeout(10)
        with conn:
            buf = bytearray()
            while len(buf) < len(blob_up):
                chunk = conn.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
            got["host"] = bytes(buf)
            conn.sendall(blob_down)

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    t = threading.Thread(target=host_side, args=(listener,), daemon=True)
    t.start()
    with tapped(net.Endpoint("tcp", host="127.0.0.1", port=listener.getsockname()[1])) as (ep, records):
        sock = net.connect(ep, 3.0)
        sock.settimeout(10)
        sock.sendall(blob_up)
        buf = bytearray()
        while len(buf) < len(blob_down):
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
        sock.close()
        t.join(10)
        settle(records)
    listener.close()
    assert got["host"] == blob_up and bytes(buf) == blob_down
    breaks = [r for r in records if r.kind == "break"]
    assert {r.sender for r in breaks} == {"guest", "host"} and len(breaks) == 2
    host_break = next(r for r in breaks if r.sender == "host")
    assert host_break.failure_ids == ["stream-bad-magic"]  # not vsockenc-desync: no FRAME_REQUEST was seen
    summary = next(r.fields for r in records if r.kind == "summary")
    assert summary["directions"]["host>guest"]["bytes"] == len(blob_down)
    assert summary["directions"]["host>guest"]["undecoded_bytes"] == len(blob_down)


# ---------------------------------------------------------------------- scanout mode


@pytest.mark.parametrize("kind", ["tcp>tcp", "tcp>unix"])
def test_scanout_through_the_tap(kind, short_tmp):
    pcap = short_tmp / "scanout.pcapng"
    with running_server(size=HD, fps=30, unix=[str(short_tmp / "hfe.sock")], tcp=[("127.0.0.1", 0)]) as server:
        listen, host = endpoints(kind, server, short_tmp)
        with tapped(host, listen=listen, pcap=pcap) as (ep, records):
            result = exchange(ExchangeOptions(endpoint=ep, mode="scanout", duration=1.0, size=HD, timeout=3.0,
                                              decode=False))
            settle(records)
    assert result.status == "pass", result.to_dict()["findings"]
    got = messages(records)
    assert got[0] == (1, "guest", "SUBSCRIBE")
    assert (1, "host", "SUBSCRIBE_RESP") in got[1:3]  # a frame may come first (tolerated)
    pushed = [r for r in records if r.type == "FRAME_RESPONSE"]
    assert len(pushed) == result.frames_received >= 10
    assert all(r.event in ("push", "early-push") for r in pushed) and not flagged(records, "stream-protocol-error")
    assert pushed[0].fields["keyframe"]
    # What the guest received is what the tap read from the host, byte for byte (Wireshark's reassembly).
    stream = tshark_stream_bytes(pcap)
    summary = next(r.fields for r in records if r.kind == "summary")
    assert len(stream["host"]) == summary["directions"]["host>guest"]["bytes"] == result.bytes_received
    assert tshark_messages(pcap, host.port if host.kind == "tcp" else UNIX_HOST_PORT) == got


def test_any_number_of_connections_at_once():
    with running_server(size=(320, 240)) as server, tapped(endpoint_of(server)) as (ep, records):
        results = []
        threads = [threading.Thread(target=lambda: results.append(exchange(ExchangeOptions(
            endpoint=ep, frames=5, size=(320, 240), timeout=3.0)))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        settle(records, conns=4)
    assert [r.status for r in results] == ["pass"] * 4
    summaries = [r.fields for r in records if r.kind == "summary"]
    assert sorted(s["conn"] for s in summaries) == [1, 2, 3, 4]
    assert all(s["messages"] == 10 and s["closed_by"] == "guest" for s in summaries)


def test_a_guest_that_never_reads_does_not_keep_the_tap_from_stopping():
    """Scanout frames pile up towards a subscriber that stopped reading: the pump towards it
    blocks in its write, and stop() still ends everything within a second, with the summary."""
    records: list[Record] = []
    with running_server(size=HD, fps=60) as server:
        tap = Tap(TapConfig(listen=parse_address("tcp://127.0.0.1:0", listen=True), to=endpoint_of(server)),
                  Observer(records.append))
        ep = tap.start()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.connect((ep.host, ep.port))
        try:
            sock.sendall(protocol.encode(protocol.Subscribe(1)))
            time.sleep(1.5)  # the tap's write towards us fills and blocks
            started = time.monotonic()
            tap.stop()
            took = time.monotonic() - started
        finally:
            sock.close()
    assert took < 1.0, took
    summary = next(r.fields for r in records if r.kind == "summary")
    assert summary["closed_by"] == "tap" and summary["frames"] >= 1


def test_half_close_gives_the_other_side_a_second():
    """The guest sends a PING and shuts down its side (like `nc -N`): the PONG still comes
    back, then the connection ends."""
    with running_server(size=(320, 240)) as server, tapped(endpoint_of(server)) as (ep, records):
        sock = net.connect(ep, 3.0)
        sock.settimeout(5)
        sock.sendall(protocol.encode(protocol.Ping(7)))
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(100):
            data += chunk
        sock.close()
        settle(records)
    assert protocol.decode_all(data) == [protocol.Pong(7)]
    assert [(r.type, r.event) for r in records if r.kind == "message"] == [("PING", "request"), ("PONG", "reply")]
    assert not [r for r in records if r.flags]  # a half-close is not giving up


# ---------------------------------------------------------------------- every fault, where it happens

# fault → (kind of record, its message type, sender) where the fault's failure id must show.
WHERE = {
    "bad-magic": ("break", None, "host"),
    "no-sps": ("message", "FRAME_RESPONSE", "host"),
    "avcc": ("message", "FRAME_RESPONSE", "host"),
    "error=-5": ("message", "ERROR", "host"),
    "slow=150": ("message", "FRAME_RESPONSE", "host"),
    "ignore-frame-request": ("message", "PONG", "host"),
    "hang": ("note", None, "host"),
    "close": ("close", None, "host"),
    "close-after-subscribe": ("close", None, "host"),
    "no-frames": ("note", None, "host"),  # no id: on the wire this is a static picture (send agrees)
    "double-init": ("note", None, "host"),
    "drop-after=1": ("close", None, "host"),
}


@pytest.mark.parametrize("fault", list(WHERE))
def test_every_serve_fault_is_flagged_where_it_happens(fault):
    parsed = parse_fault(fault)
    mode = "request" if parsed.applies_to("request") else "scanout"
    expected = FAULT_KINDS[parsed.kind].expected_failure
    with running_server(size=(320, 240), fault=parsed, fps=30) as server, \
            tapped(endpoint_of(server), reply_timeout=0.5) as (ep, records):
        result = exchange(ExchangeOptions(endpoint=ep, mode=mode, frames=3, size=(320, 240), timeout=0.8,
                                          duration=2.0 if mode == "scanout" else None))
        settle(records)
    kind, mtype, sender = WHERE[fault]
    if fault in ("no-frames", "double-init"):
        # A subscription that stays silent is what a static picture looks like: neither the
        # tap nor send (watching) calls it a failure; the tap says so once.
        assert not result.findings
        silent = [r for r in records if r.kind == "note" and "no frame for" in r.text]
        assert len(silent) == 1 and not silent[0].flags and "static picture" in silent[0].text
        return
    assert expected in result.findings  # the client agrees on what the host did
    hits = flagged(records, expected)
    assert hits, [render.lines(r) for r in records]
    first = hits[0]
    assert (first.kind, first.type, first.sender) == (kind, mtype, sender), render.lines(first)
    if fault in ("no-sps", "avcc", "error=-5", "slow=150"):
        assert first.answers == (1, "FRAME_REQUEST")  # the reply to the first frame
    if fault in ("hang", "ignore-frame-request"):
        assert first.flags[[f.failure_id for f in first.flags].index(expected)].evidence["request"] == 1
    if fault == "bad-magic":
        assert first.fields["offset"] == 0 and "vsockenc-desync" in first.failure_ids
    summary = next(r.fields for r in records if r.kind == "summary")
    assert summary["failures"][expected] >= 1


# ---------------------------------------------------------------------- the conversation rules, sans-I/O


def feed(chunks: list[tuple[str, bytes]]) -> list[Record]:
    records: list[Record] = []
    obs = Observer(records.append)
    obs.opened(1, "tcp://g:1", "tcp://h:2", 0.0)
    for i, (sender, data) in enumerate(chunks):
        obs.data(1, sender, data, 0.01 * (i + 1))
    obs.finish(1.0)
    return records


def au(*types: int) -> bytes:
    return b"".join(b"\0\0\0\1" + bytes([0x60 | t]) + b"\x88\x84" for t in types)


def test_reply_without_request_in_request_mode_is_a_desync():
    req = protocol.encode(FrameRequest(64, 32, PixelFormat.NV12, 64, pixels=bytes(3072)))
    reply = protocol.encode(FrameResponse((au(1),)))
    records = feed([("guest", req), ("host", reply), ("host", reply)])
    extra = [r for r in records if r.kind == "message"][2]
    assert extra.event == "unsolicited"
    assert extra.failure_ids == ["stream-protocol-error", "vsockenc-desync"]


def test_pushed_frame_before_subscribe_resp_is_tolerated_and_nal_rules_apply():
    records = feed([
        ("guest", protocol.encode(protocol.Subscribe(1))),
        ("host", protocol.encode(FrameResponse((au(7, 8, 5),), is_keyframe=True))),
        ("host", protocol.encode(protocol.SubscribeResponse(1))),
        ("host", protocol.encode(FrameResponse((au(5),), is_keyframe=True))),  # IDR without SPS/PPS
        ("host", protocol.encode(FrameResponse((au(1), au(1))))),  # two entries
    ])
    msgs = [r for r in records if r.kind == "message"]
    assert [m.event for m in msgs] == ["request", "early-push", "reply", "push", "push"]
    assert msgs[1].failure_ids == [] and msgs[1].fields["nal_types"] == ["SPS", "PPS", "IDR"]
    assert msgs[3].failure_ids == ["stream-no-sps-pps"]
    assert msgs[4].failure_ids == ["stream-nal-count"]


def test_unknown_and_unexpected_types():
    unknown = b"HXFR\x42\x00\x01\x00\x02\x00\x00\x00ab"
    records = feed([("guest", unknown), ("host", unknown), ("guest", protocol.encode(protocol.Pong(1)))])
    msgs = [r for r in records if r.kind == "message"]
    assert [(m.sender, m.type, m.failure_ids) for m in msgs] == [
        ("guest", "type 0x42", []), ("host", "type 0x42", ["stream-protocol-error"])]
    brk = next(r for r in records if r.kind == "break")  # a guest sending a host's message
    assert brk.sender == "guest" and brk.fields["kind"] == "unexpected-type"
    assert brk.failure_ids == ["stream-protocol-error"]


def test_large_requests_are_summarised_not_kept():
    source = SyntheticSource(*HD, PixelFormat.NV12)
    wire = protocol.encode(FrameRequest(*HD, PixelFormat.NV12, 1920, pixels=source.frame(0)))
    records: list[Record] = []
    obs = Observer(records.append)
    obs.opened(1, "g", "h", 0.0)
    for i in range(0, len(wire), 65536):
        obs.data(1, "guest", wire[i:i + 65536], 0.1)
    view = obs.views[1]
    (waiting, _), = view.conversation.waiting()
    assert waiting.pixels is None  # the conversation keeps the request, not its 3 MB
    assert records[-1].fields["pixel_bytes"] == 1920 * 1080 * 3 // 2


# ---------------------------------------------------------------------- the capture


@pytest.mark.parametrize(("fault", "expert"), [("avcc", "hxfr.avcc"), ("no-sps", "hxfr.no_sps_pps"),
                                              ("bad-magic", "hxfr.bad_magic")])
def test_the_dissector_objects_where_the_tap_does(fault, expert, short_tmp):
    pcap = short_tmp / "fault.pcapng"
    with running_server(size=(320, 240), fault=parse_fault(fault)) as server, \
            tapped(endpoint_of(server), pcap=pcap) as (ep, records):
        exchange(ExchangeOptions(endpoint=ep, frames=2, size=(320, 240), timeout=1.0))
        settle(records)
    out = subprocess.run([require_tool("tshark"), "-n", "-r", str(pcap), "-X", f"lua_script:{dissector_path()}",
                          "-Y", expert, "-T", "fields", "-e", "tcp.srcport"],
                         capture_output=True, text=True, timeout=60, check=True).stdout.split()
    flagged_by_tap = [r for r in records if FAULT_KINDS[fault].expected_failure in r.failure_ids]
    assert out and len(out) == len(flagged_by_tap)  # one packet per message the tap flagged
    assert set(out) == {str(endpoint_of(server).port)}  # all from the host


def test_pcap_limit_stops_recording_with_a_comment_and_the_log_goes_on(short_tmp):
    pcap = short_tmp / "small.pcapng"
    with running_server(size=HD) as server, tapped(endpoint_of(server), pcap=pcap, limit=4_000_000) as (ep, records):
        raw_requests(ep, 3)
        settle(records)
    assert len(messages(records)) == 6  # the log has them all
    notes = [r for r in records if r.kind == "note" and "--pcap-limit" in r.text]
    assert len(notes) == 1
    assert pcap.stat().st_size < 4_100_000
    tshark = require_tool("tshark")
    comments = subprocess.run([tshark, "-n", "-r", str(pcap), "-T", "fields", "-e", "frame.comment"],
                              capture_output=True, text=True, timeout=60, check=True).stdout
    assert "recording stopped here, at the --pcap-limit of 4 MB" in comments
    replayed: list[Record] = []
    replay(str(pcap), Observer(replayed.append))
    assert messages(replayed) == messages(records)[:2]  # 4 MB hold the first request and its reply
    assert any("recording stopped" in r.text for r in replayed if r.kind == "note")


def test_read_takes_a_classic_pcap_too(short_tmp):
    pcap = short_tmp / "cap.pcapng"
    with running_server(size=(320, 240)) as server, tapped(endpoint_of(server), pcap=pcap) as (ep, records):
        exchange(ExchangeOptions(endpoint=ep, frames=4, size=(320, 240)))
        settle(records)
    classic = short_tmp / "cap.pcap"
    subprocess.run([require_tool("editcap"), "-F", "pcap", str(pcap), str(classic)], check=True, timeout=60,
                   capture_output=True)
    replayed: list[Record] = []
    replay(str(classic), Observer(replayed.append))
    assert messages(replayed) == messages(records)  # the endpoints' comments are gone, the messages are not


def test_host_that_cannot_be_reached():
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with tapped(net.Endpoint("tcp", host="127.0.0.1", port=port)) as (ep, records):
        sock = net.connect(ep, 3.0)
        sock.settimeout(5)
        assert sock.recv(10) == b""  # the guest's connection is closed, as with no host at all
        sock.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not records:
            time.sleep(0.02)
    assert records[0].failure_ids == ["stream-connect-failed"]


# ---------------------------------------------------------------------- the command


def test_cli_live_json_lines_ctrl_c_and_read(short_tmp):
    pcap, jsonl = short_tmp / "live.pcapng", short_tmp / "live.jsonl"
    with running_server(size=(640, 480)) as server:
        proc = subprocess.Popen(helixdiag_cmd("tap", "--listen", "tcp://127.0.0.1:0", "--to",
                                              str(endpoint_of(server)), "--pcap", str(pcap), "--json-lines", str(jsonl)),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "NO_COLOR": "1"})
        try:
            first = proc.stdout.readline()
            assert first.startswith("listening tcp://127.0.0.1:"), first
            ep = net.parse_endpoint(first.split()[1])
            result = exchange(ExchangeOptions(endpoint=ep, frames=5, size=(640, 480), timeout=3.0))
            time.sleep(0.3)
            started = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=10)
            stopped_in = time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert result.status == "pass"
    assert stopped_in < 1.0, stopped_in
    assert proc.returncode == 0, out
    assert "c1 summary" in out and "1 connection, 10 messages, 0 protocol failures flagged" in out
    docs = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [d["type"] for d in docs if d["event"] == "message"] == ["FRAME_REQUEST", "FRAME_RESPONSE"] * 5
    assert docs[-1]["event"] == "summary" and docs[-1]["summary"]["frames"] == 5
    live_lines = [line for line in out.splitlines() if " c1 " in line]
    read = run_cli("tap", "--read", str(pcap))
    assert read.returncode == 0, read.stderr
    assert [line for line in read.stdout.splitlines() if " c1 " in line] == live_lines


def test_cli_exit_code_names_the_failure_and_json_to_stdout():
    with running_server(size=(320, 240), fault=parse_fault("avcc")) as server:
        proc = subprocess.Popen(helixdiag_cmd("tap", "--listen", "tcp://127.0.0.1:0", "--to", str(endpoint_of(server)),
                                              "--json-lines", "-", "--duration", "3"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "NO_COLOR": "1"})
        try:
            first = json.loads(proc.stdout.readline())
            assert first["event"] == "listening"
            exchange(ExchangeOptions(endpoint=net.parse_endpoint(first["address"]), frames=2, size=(320, 240)))
            out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert proc.returncode == 1
    docs = [json.loads(line) for line in out.splitlines()]  # stdout: JSON only
    avcc = [d for d in docs if any(f["id"] == "stream-avcc" for f in d.get("failures", []))]
    assert [d["n"] for d in avcc] == [2, 4]
    assert "stream-avcc" in err  # the human view went to stderr


def test_cli_dissector_and_usage():
    res = run_cli("tap", "--dissector")
    path = Path(res.stdout.strip())
    assert res.returncode == 0 and path.name == "hxfr.lua" and path.is_file()
    assert "plugins" in res.stderr and "lua_script" in res.stderr
    assert 'Proto("hxfr"' in path.read_text()
    for args in (["--listen", "tcp://127.0.0.1:0"], ["--read", "x.pcap", "--to", "tcp://127.0.0.1:1"],
                 ["--listen", "ftp://x", "--to", "tcp://127.0.0.1:1"]):
        res = run_cli("tap", *args)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    res = run_cli("tap", "--read", "/nonexistent.pcapng")
    assert res.returncode == 2 and "no such capture" in res.stderr


def test_dissector_ships_in_the_wheel_config():
    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert "helixdiag/tap/hxfr.lua" in text
    assert dissector_path().is_file()


def test_parse_address():
    assert parse_address("unix:/tmp/x.sock") == net.Endpoint("unix", path="/tmp/x.sock")
    assert parse_address("unix:///tmp/x.sock") == net.Endpoint("unix", path="/tmp/x.sock")
    assert parse_address("tcp://127.0.0.1:0", listen=True).port == 0
    assert parse_address("tcp://127.0.0.1:5900") == net.Endpoint("tcp", host="127.0.0.1", port=5900)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


@pytest.mark.parametrize("ts", [1733343647.528, 1733343647.5279996, 1733343647.9999996, 1733343647.0000004])
def test_a_time_prints_the_same_live_and_read_back_from_the_capture(ts):
    from helixdiag.tap.render import clock, iso_ms
    recorded = round(ts * 1e6) / 1e6  # what the pcapng block stores and `tap --read` gets back
    assert clock(ts) == clock(recorded) and iso_ms(ts) == iso_ms(recorded)
    assert iso_ms(1733343647.9999996).endswith(":48.000Z")  # the carry reaches the seconds
