"""`tap --read`: a capture played through the same `Observer` the live tap uses, so it prints
the same lines. Reads the tap's own pcapng (whose connection comments restore the original
endpoints, Unix sockets included) and other captures of HXFR over TCP (pcap or pcapng from
tcpdump or Wireshark: Ethernet, loopback, Linux cooked or raw IP), reassembling each TCP
direction by sequence number. Connections that never carry HXFR are left out.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import dpkt

from helixdiag.protocol import MAGIC
from helixdiag.tap.observer import TICK_S, Observer
from helixdiag.tap.pcap import COMMENT, ip_layer, packets
from helixdiag.tap.view import GUEST, HOST

_HXFR = MAGIC.to_bytes(4, "little")
MAX_PENDING = 512  # out-of-order segments kept per direction before a gap is declared

Address = tuple[str, int]


@dataclass
class _Flow:
    guest: Address
    host: Address
    first_ts: float
    labels: tuple[str, str] | None = None
    conn: int | None = None  # given once the flow shows HXFR (or carries the tap's comment)
    next_seq: dict[str, int | None] = field(default_factory=lambda: {GUEST: None, HOST: None})
    pending: dict[str, dict[int, bytes]] = field(default_factory=lambda: {GUEST: {}, HOST: {}})
    held: list[tuple[str, bytes, float]] = field(default_factory=list)  # data before we knew it is HXFR
    closed: set[str] = field(default_factory=set)
    ignored: bool = False


class Replay:
    def __init__(self, observer: Observer) -> None:
        self.observer = observer
        self.flows: dict[frozenset, _Flow] = {}
        self.conns = 0
        self.ignored = 0
        self.next_tick: float | None = None
        self.last_ts = 0.0

    def run(self, path: str) -> None:
        linktype, stream = packets(path)
        for pkt in stream:
            self._tick(pkt.ts)
            self.last_ts = pkt.ts
            ip = ip_layer(linktype, pkt.data)
            if ip is None or not isinstance(ip.data, dpkt.tcp.TCP):
                if pkt.comment:
                    self.observer.note(0, pkt.comment, pkt.ts)
                continue
            self._segment(pkt.ts, _addr(ip.src), _addr(ip.dst), ip.data, pkt.comment)
        if self.ignored:
            self.observer.note(0, f"{self.ignored} TCP connection(s) without HXFR left out", self.last_ts)
        self.observer.finish(self.last_ts)

    def _tick(self, ts: float) -> None:
        if self.next_tick is None:
            self.next_tick = ts + TICK_S
        while ts >= self.next_tick:
            self.observer.tick(self.next_tick)
            self.next_tick += TICK_S

    def _segment(self, ts: float, src_ip: str, dst_ip: str, tcp: dpkt.tcp.TCP, comment: str | None) -> None:
        src, dst = (src_ip, tcp.sport), (dst_ip, tcp.dport)
        key = frozenset((src, dst))
        syn = bool(tcp.flags & dpkt.tcp.TH_SYN)
        ack = bool(tcp.flags & dpkt.tcp.TH_ACK)
        flow = self.flows.get(key)
        if flow is None or (syn and not ack and flow.closed):
            guest, host = (dst, src) if syn and ack else (src, dst)
            flow = self.flows[key] = _Flow(guest, host, ts)
        sender = GUEST if src == flow.guest else HOST
        match = COMMENT.match(comment) if comment else None
        if match:
            flow.labels = (match["guest"], match["host"])
            self._open(flow)
        elif comment and flow.conn is not None:
            self.observer.note(flow.conn, comment, ts)
        if syn:
            flow.next_seq[sender] = (tcp.seq + 1) & 0xFFFFFFFF
            return
        payload = bytes(tcp.data)
        if payload:
            self._payload(flow, sender, tcp.seq, payload, ts)
        if tcp.flags & (dpkt.tcp.TH_FIN | dpkt.tcp.TH_RST):
            sides = [sender] if tcp.flags & dpkt.tcp.TH_FIN else [sender, GUEST if sender == HOST else HOST]
            for side in sides:
                if side not in flow.closed:
                    flow.closed.add(side)
                    if flow.conn is not None:
                        self.observer.closed(flow.conn, side, ts)

    def _payload(self, flow: _Flow, sender: str, seq: int, payload: bytes, ts: float) -> None:
        expected = flow.next_seq[sender]
        if expected is None:
            expected = seq
        ahead = (seq - expected) & 0xFFFFFFFF
        if ahead and ahead < 0x80000000:  # a later segment: keep it until the gap fills
            pending = flow.pending[sender]
            pending[seq] = payload
            if len(pending) <= MAX_PENDING:
                return
            first = min(pending, key=lambda s: (s - expected) & 0xFFFFFFFF)
            self._deliver(flow, sender, None, ts, f"the capture is missing {(first - expected) & 0xFFFFFFFF} "
                                                  f"bytes of the {sender}'s stream here")
            expected = first
            seq, payload = first, pending.pop(first)
        skip = (expected - seq) & 0xFFFFFFFF
        if skip >= len(payload):
            return  # a retransmission of bytes already delivered
        data = payload[skip:]
        expected = (expected + len(data)) & 0xFFFFFFFF
        self._deliver(flow, sender, data, ts)
        pending = flow.pending[sender]
        while expected in pending:
            more = pending.pop(expected)
            expected = (expected + len(more)) & 0xFFFFFFFF
            self._deliver(flow, sender, more, ts)
        flow.next_seq[sender] = expected

    def _deliver(self, flow: _Flow, sender: str, data: bytes | None, ts: float, gap: str = "") -> None:
        if flow.ignored:
            return
        if flow.conn is None:  # not known to be HXFR yet: look at the first sender's first bytes
            if data is None:
                flow.ignored = True
                self.ignored += 1
                return
            flow.held.append((sender, data, ts))
            first = b"".join(d for s, d, _ in flow.held if s == flow.held[0][0])
            if len(first) < len(_HXFR):
                return
            if not first.startswith(_HXFR):
                flow.ignored = True
                self.ignored += 1
                flow.held.clear()
                return
            self._open(flow)
            data = None  # it is the last of the held chunks
        conn = flow.conn
        assert conn is not None
        for side, held, held_ts in flow.held:
            self.observer.data(conn, side, held, held_ts)
        flow.held.clear()
        if gap:
            self.observer.note(conn, gap, ts)
        if data is not None:
            self.observer.data(conn, sender, data, ts)

    def _open(self, flow: _Flow) -> None:
        if flow.conn is not None:
            return
        self.conns += 1
        flow.conn = self.conns
        guest, host = flow.labels or (f"tcp://{flow.guest[0]}:{flow.guest[1]}", f"tcp://{flow.host[0]}:{flow.host[1]}")
        self.observer.opened(flow.conn, guest, host, flow.first_ts)


def _addr(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def replay(path: str, observer: Observer) -> Replay:
    r = Replay(observer)
    r.run(path)
    return r
