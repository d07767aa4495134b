"""The tap's capture: pcapng written and read with dpkt.

Each tapped connection becomes one synthesised IPv4/TCP connection (handshake, data, FINs)
between the guest and the host, so Wireshark's TCP reassembly hands whole HXFR messages to
the dissector (`hxfr.lua`): segments of at most 65 495 bytes (the largest an IPv4 packet
holds), sequence and acknowledgement numbers that add up, the time each chunk was read, and
both endpoints as they were (a Unix-socket side gets a stand-in address, said in the
connection's first packet comment). `--pcap-limit` stops recording with a comment.
"""

from __future__ import annotations

import re
import socket
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import dpkt
import numpy as np
from dpkt import pcapng

from helixdiag import __version__

MAX_SEGMENT = 65535 - 20 - 20  # an IPv4 packet's 16-bit total length, minus IP and TCP headers
SNAPLEN = 262144
WINDOW_SCALE = 14  # announced in the SYNs, so an advertised window of 65535 means 1 GiB
GUEST_MAC, HOST_MAC = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"
UNIX_GUEST_IP, UNIX_HOST_IP = "127.0.0.1", "127.0.0.1"
UNIX_HOST_PORT = 15937  # a Unix-socket host has no port: the default HXFR port stands in
UNIX_GUEST_PORT_BASE = 40000
COMMENT = re.compile(r"^helixdiag tap connection (?P<conn>\d+): guest (?P<guest>.+?) host (?P<host>.+)$")
_LE = sys.byteorder == "little"
_SHB = pcapng.SectionHeaderBlockLE if _LE else pcapng.SectionHeaderBlock
_IDB = pcapng.InterfaceDescriptionBlockLE if _LE else pcapng.InterfaceDescriptionBlock
_EPB = pcapng.EnhancedPacketBlockLE if _LE else pcapng.EnhancedPacketBlock
_OPT = pcapng.PcapngOptionLE if _LE else pcapng.PcapngOption


def _options(*pairs: tuple[int, str]) -> list:
    opts = []
    for code, text in pairs:
        opt = _OPT(code=code)
        if code == pcapng.PCAPNG_OPT_COMMENT:
            opt.text = text
        else:
            opt.data = text.encode()
        opts.append(opt)
    return [*opts, _OPT(code=pcapng.PCAPNG_OPT_ENDOFOPT)]


def stand_in(address: tuple[str, int] | None, conn: int, side: str) -> tuple[str, int]:
    """The IPv4 address and port a side is recorded under: its own when it is TCP over IPv4,
    else a stand-in (Unix sockets, IPv6)."""
    if address is not None:
        try:
            socket.inet_aton(address[0])
            return address[0], address[1]
        except OSError:
            pass
    if side == "guest":
        return UNIX_GUEST_IP, UNIX_GUEST_PORT_BASE + conn % 20000
    return UNIX_HOST_IP, UNIX_HOST_PORT


@dataclass
class _Flow:
    addr: dict[str, tuple[bytes, int]]  # side → (IPv4 bytes, port)
    seq: dict[str, int]  # side → next sequence number
    fin: set[str] = field(default_factory=set)
    ip_id: int = 0


class CaptureWriter:
    """Writes pcapng; `limit` (bytes) stops recording with a comment. Not thread-safe: the
    tap's observer thread is its only user."""

    def __init__(self, path: str, *, limit: int | None = None, description: str = "") -> None:
        self.path = path
        self.limit = limit
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._flows: dict[int, _Flow] = {}
        self.stopped = False
        self.packets = 0
        shb = _SHB(opts=_options((pcapng.PCAPNG_OPT_SHB_USERAPPL, f"helixdiag {__version__} tap")))
        idb = _IDB(snaplen=SNAPLEN, linktype=dpkt.pcap.DLT_EN10MB,
                   opts=_options((pcapng.PCAPNG_OPT_IF_NAME, "helixdiag-tap"),
                                 (pcapng.PCAPNG_OPT_IF_DESCRIPTION, description or "HXFR relayed by helixdiag tap")))
        self._writer = pcapng.Writer(self._file, shb=shb, idb=idb)
        self.written = self._file.tell()

    # ------------------------------------------------------------------ connection events
    def opened(self, conn: int, guest: tuple[str, int], host: tuple[str, int], ts: float,
               labels: tuple[str, str]) -> bool:
        flow = _Flow(addr={"guest": (socket.inet_aton(guest[0]), guest[1]),
                           "host": (socket.inet_aton(host[0]), host[1])},
                     seq={"guest": (conn * 0x9E3779B1) & 0xFFFFFFFF,
                          "host": (conn * 0x85EBCA77 + 0x5BD1E995) & 0xFFFFFFFF})
        self._flows[conn] = flow
        mss_ws = struct.pack("!BBH", 2, 4, MAX_SEGMENT) + b"\x01" + struct.pack("!BBB", 3, 3, WINDOW_SCALE)
        comment = f"helixdiag tap connection {conn}: guest {labels[0]} host {labels[1]}"
        return (self._segment(flow, "guest", ts, dpkt.tcp.TH_SYN, opts=mss_ws, comment=comment, seq_len=1)
                or self._segment(flow, "host", ts, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, opts=mss_ws, seq_len=1)
                or self._segment(flow, "guest", ts, dpkt.tcp.TH_ACK))

    def data(self, conn: int, side: str, chunk: bytes, ts: float) -> bool:
        """Record `chunk` sent by `side`; True when this is where the limit stopped recording."""
        flow = self._flows.get(conn)
        if flow is None or self.stopped:
            return False
        view = memoryview(chunk)
        for start in range(0, len(view), MAX_SEGMENT):
            part = view[start:start + MAX_SEGMENT]
            last = start + MAX_SEGMENT >= len(view)
            flags = dpkt.tcp.TH_ACK | (dpkt.tcp.TH_PUSH if last else 0)
            if self._segment(flow, side, ts, flags, payload=bytes(part)):
                return True
        return False

    def closed(self, conn: int, side: str, ts: float) -> bool:
        flow = self._flows.get(conn)
        if flow is None or self.stopped or side in flow.fin:
            return False
        flow.fin.add(side)
        stopped = self._segment(flow, side, ts, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK, seq_len=1)
        if not stopped and len(flow.fin) == 2:
            stopped = self._segment(flow, "guest" if side == "host" else "host", ts, dpkt.tcp.TH_ACK)
            del self._flows[conn]
        return stopped

    def close(self) -> None:
        self._file.close()

    # ------------------------------------------------------------------ packets
    def _segment(self, flow: _Flow, side: str, ts: float, flags: int, *, payload: bytes = b"",
                 opts: bytes = b"", comment: str | None = None, seq_len: int | None = None) -> bool:
        """Write one segment; True if the limit stopped recording here (the segment is then
        replaced by a payload-free ACK carrying the comment that says so)."""
        if self.stopped:
            return False
        other = "host" if side == "guest" else "guest"
        packet = self._packet(flow, side, other, flags, payload, opts)
        if self.limit is not None and self.written + len(packet) + 64 > self.limit:
            self.stopped = True
            note = (f"helixdiag tap: recording stopped here, at the --pcap-limit of {self.limit / 1e6:g} MB; "
                    "the live log went on")
            self._write(self._packet(flow, side, other, dpkt.tcp.TH_ACK, b"", b""), ts, note)
            return True
        flow.seq[side] = (flow.seq[side] + (len(payload) if seq_len is None else seq_len)) & 0xFFFFFFFF
        self._write(packet, ts, comment)
        return False

    def _packet(self, flow: _Flow, side: str, other: str, flags: int, payload: bytes, opts: bytes) -> bytes:
        (src, sport), (dst, dport) = flow.addr[side], flow.addr[other]
        ack = flow.seq[other] if flags & dpkt.tcp.TH_ACK else 0
        tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=flow.seq[side], ack=ack, flags=flags,
                           win=65535, opts=opts, data=payload)
        tcp.off = (20 + len(opts)) // 4
        tcp.sum = tcp_checksum(src, dst, tcp.pack_hdr() + bytes(tcp.opts) + payload) or 0xFFFF
        flow.ip_id = (flow.ip_id + 1) & 0xFFFF
        ip = dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_TCP, ttl=64, id=flow.ip_id, data=tcp)
        ip.df = 1
        eth = dpkt.ethernet.Ethernet(src=GUEST_MAC if side == "guest" else HOST_MAC,
                                     dst=HOST_MAC if side == "guest" else GUEST_MAC,
                                     type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
        return bytes(eth)

    def _write(self, packet: bytes, ts: float, comment: str | None) -> None:
        micros = round(ts * 1e6)
        epb = _EPB(ts_high=micros >> 32, ts_low=micros & 0xFFFFFFFF, pkt_data=packet,
                   opts=_options((pcapng.PCAPNG_OPT_COMMENT, comment)) if comment else [])
        self._writer.writepkt(epb, ts=ts)
        self.written = self._file.tell()
        self.packets += 1


def tcp_checksum(src: bytes, dst: bytes, segment: bytes) -> int:
    """RFC 793's checksum over the IPv4 pseudo-header and the segment (numpy: dpkt's own is
    pure Python and takes ~0.5 ms per 64 KiB segment)."""
    n = len(segment)
    padded = segment + b"\0" if n % 2 else segment
    total = int(np.frombuffer(padded, dtype=">u2").sum(dtype=np.uint64))
    total += sum(struct.unpack("!HHHH", src + dst)) + dpkt.ip.IP_PROTO_TCP + n
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


# ---------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Packet:
    ts: float
    data: bytes
    comment: str | None


def packets(path: str) -> tuple[int, Iterator[Packet]]:
    """(link type, packets) of a pcapng or classic pcap file."""
    fh = open(path, "rb")  # noqa: SIM115 - closed when the iterator ends
    magic = fh.read(4)
    fh.seek(0)
    if magic == b"\x0a\x0d\x0d\x0a":
        reader = pcapng.Reader(fh)
        return reader.datalink(), _pcapng_blocks(fh, reader)
    reader = dpkt.pcap.Reader(fh)
    return reader.datalink(), _closing(fh, (Packet(ts, bytes(buf), None) for ts, buf in reader))


def _closing(fh: BinaryIO, it: Iterator[Packet]) -> Iterator[Packet]:
    try:
        yield from it
    finally:
        fh.close()


def _pcapng_blocks(fh: BinaryIO, reader: pcapng.Reader) -> Iterator[Packet]:
    """The packet blocks after the interface block, with their comments (dpkt's Reader
    drops the options; the blocks are still parsed by dpkt)."""
    le = isinstance(reader.idb, pcapng.InterfaceDescriptionBlockLE)
    epb_cls = pcapng.EnhancedPacketBlockLE if le else pcapng.EnhancedPacketBlock
    try:
        while True:
            head = fh.read(8)
            if len(head) < 8:
                return
            kind, length = struct.unpack("<II" if le else ">II", head)
            if length < 12:
                return
            body = head + fh.read(length - 8)
            if kind != pcapng.PCAPNG_BT_EPB:
                continue
            epb = epb_cls(body)
            ts = reader._tsoffset + ((epb.ts_high << 32) | epb.ts_low) / reader._divisor
            comment = next((o.text for o in epb.opts if o.code == pcapng.PCAPNG_OPT_COMMENT), None)
            yield Packet(ts, bytes(epb.pkt_data), comment)
    finally:
        fh.close()


def ip_layer(linktype: int, frame: bytes):
    """The IP packet inside a link-layer frame, or None."""
    try:
        if linktype == dpkt.pcap.DLT_EN10MB:
            pkt = dpkt.ethernet.Ethernet(frame).data
        elif linktype in (dpkt.pcap.DLT_NULL, dpkt.pcap.DLT_LOOP):
            pkt = dpkt.loopback.Loopback(frame).data
        elif linktype == dpkt.pcap.DLT_LINUX_SLL:
            pkt = dpkt.sll.SLL(frame).data
        elif linktype in (101, 228, 229, dpkt.pcap.DLT_RAW):  # LINKTYPE_RAW, IPV4, IPV6
            pkt = dpkt.ip.IP(frame) if frame[:1] and frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
        else:
            return None
    except (dpkt.UnpackError, IndexError, struct.error):
        return None
    return pkt if isinstance(pkt, dpkt.ip.IP | dpkt.ip6.IP6) else None
