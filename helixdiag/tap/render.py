"""How a tap record reads: one line for people (rich markup), one JSON object for machines."""

from __future__ import annotations

import time
from typing import Any

from rich.markup import escape

from helixdiag.findings import printable
from helixdiag.tap.view import GUEST, OTHER, Record

ARROW = {GUEST: "G→H", "host": "H→G"}
MAX_NAL_TYPES = 8


def _split(ts: float) -> tuple[int, int]:
    """Whole seconds and the millisecond, taken from the microsecond a capture records (pcap.py
    rounds to it), so the live view and `tap --read` of its capture print the same time: the
    float read back (e.g. ….527999) would otherwise truncate one millisecond lower."""
    micros = round(ts * 1e6)
    return micros // 1_000_000, micros // 1000 % 1000


def clock(ts: float) -> str:
    """Local wall time to the millisecond, like a capture's time column."""
    secs, ms = _split(ts)
    return time.strftime("%H:%M:%S", time.localtime(secs)) + f".{ms:03d}"


def iso_ms(ts: float) -> str:
    secs, ms = _split(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ms:03d}Z"


def lines(rec: Record, *, markup: bool = True) -> list[str]:
    """The record as lines: its own, then one per failure id it shows. Rich markup, or plain
    text (`markup=False`: what rich would print without colour, at a fraction of the cost)."""
    def st(text: str, style: str) -> str:
        return f"[{style}]{escape(text)}[/{style}]" if markup else text

    def esc(text: str) -> str:
        return escape(text) if markup else text

    if rec.kind == "summary":
        return summary_lines(rec.fields, markup=markup)
    head = f"{st(clock(rec.ts), 'muted')} c{rec.conn}"
    if rec.kind == "message":
        session = rec.session_id if rec.session_id is not None else "-"
        body = (f"{ARROW[rec.sender or GUEST]} #{rec.n:<4} {st(f'{rec.type:<15}', 'bold')} "
                f"s{session:<3} {rec.size:>9} B  {esc(message_words(rec))}")
    elif rec.kind == "break":
        body = f"{ARROW[rec.sender or GUEST]} {st('protocol break', 'fail')} {esc(printable(rec.text))}"
    elif rec.kind == "open":
        body = f"{st('open', 'muted')}  {esc(rec.text)}"
    elif rec.kind == "close":
        body = f"{st('close', 'muted')} {esc(printable(rec.text))}"
    else:
        body = f"{st('note', 'warn')}  {esc(printable(rec.text))}"
    out = [f"{head} {body}"]
    for f in rec.flags:
        style = "fail" if f.severity == "fail" else "warn"
        out.append(f"    {st(f.severity.upper(), style)} {st(f.failure_id, 'id')}: {esc(f.message)}")
    return out


def message_words(rec: Record) -> str:
    f = rec.fields
    words: list[str] = []
    t = rec.type
    if t == "FRAME_REQUEST":
        words.append(f"{f['width']}x{f['height']} {f['format']} stride {f['stride']}")
        if f["pixel_bytes"] is None:
            words.append(f"no pixels, resource {f['resource_id']}")
        if f["force_keyframe"]:
            words.append("key")
    elif t == "FRAME_RESPONSE":
        types = f.get("nal_types", [])
        shown = " ".join(types[:MAX_NAL_TYPES]) + (" …" if len(types) > MAX_NAL_TYPES else "")
        if f.get("framing") != "annexb":
            shown = f"{str(f.get('framing')).upper()}: {shown}".rstrip(": ")
        words.append(shown or "no NAL units")
        if f.get("keyframe"):
            words.append("key")
        sps = f.get("sps")
        if sps:
            words.append(f"{sps['width']}x{sps['height']} {sps['profile']} {sps['level']}")
        if f["nal_count"] != 1:
            words.append(f"{f['nal_count']} entries")
    elif t in ("SUBSCRIBE", "DISABLE_SCANOUT"):
        words.append(f"scanout {f['scanout_id']}")
    elif t == "SUBSCRIBE_RESP":
        words.append(f"scanout {f['scanout_id']} {'ok' if f['success'] else 'refused'}")
    elif t == "ENABLE_SCANOUT":
        words.append(f"scanout {f['scanout_id']} {f['width']}x{f['height']}@{f['refresh_rate']}")
    elif t == "SCANOUT_RESP":
        words.append(f"scanout {f['scanout_id']} {'ok' if f['success'] else 'refused'} {printable(f['connector'])}")
    elif t == "CONFIG_REQ":
        words.append(f"{f['width']}x{f['height']} {f['bitrate'] / 1e6:g} Mb/s {f['framerate']} fps "
                     f"profile {f['profile']} level {f['level'] / 10:g}")
    elif t == "ERROR":
        words.append(f"{f['code']} {printable(repr(f['message']))}")
    elif "payload_size" in f:
        words.append(f"unknown type, {f['payload_size']} payload bytes skipped")
    if rec.event == "push":
        words.append("pushed")
    elif rec.event == "early-push":
        words.append("pushed before SUBSCRIBE_RESP")
    if rec.answers is not None:
        words.append(f"reply to #{rec.answers[0]} in {rec.latency_ms:.1f} ms")
    elif rec.text and rec.event not in ("push", "early-push"):
        words.append(printable(rec.text))
    return " · ".join(w for w in words if w)


def summary_lines(s: dict[str, Any], *, markup: bool = True) -> list[str]:
    def st(text: str, style: str) -> str:
        return f"[{style}]{escape(text)}[/{style}]" if markup else text

    def esc(text: str) -> str:
        return escape(text) if markup else text

    closed = {"guest": "closed by the guest", "host": "closed by the host", "tap": "closed by the tap",
              None: "still open"}[s["closed_by"]]
    title = "c{} summary".format(s["conn"])
    out = [f"{st(title, 'bold')}: guest {esc(s['guest'])} → host {esc(s['host'])}, {s['duration_s']:.2f} s, {closed}"]
    for direction, d in s["directions"].items():
        sender = direction.split(">")[0]
        types = ", ".join(f"{k} {v}" for k, v in d["types"].items())
        extra = f"; {d['undecoded_bytes']} B undecoded after the break at byte {d['broken_at']}" \
            if d["broken_at"] is not None else ""
        out.append(f"    {sender}→{OTHER[sender]}: {d['messages']} messages{f' ({esc(types)})' if types else ''}, "
                   f"{d['bytes']} B{extra}")
    fps = f", {s['fps']:.1f} fps" if s["fps"] is not None else ""
    lat = s["latency_ms"]
    lat_text = (f"; latency p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms ({lat['count']} replies)"
                if lat else "; no replies timed")
    out.append(f"    frames {s['frames']}{fps}{lat_text}")
    if s.get("unobserved_bytes"):
        out.append("    " + st(f"{s['unobserved_bytes']} B relayed but not observed (the observer fell behind)", "warn"))
    if s["failures"]:
        out.append("    failures: " + ", ".join(f"{st(k, 'id')} ×{v}" for k, v in s["failures"].items()))
    else:
        out.append("    no protocol failure seen")
    return out


def to_json(rec: Record) -> dict[str, Any]:
    d: dict[str, Any] = {"event": rec.kind, "time": iso_ms(rec.ts), "ts": round(rec.ts, 6), "conn": rec.conn}
    if rec.kind == "summary":
        return {**d, "summary": rec.fields}
    if rec.sender is not None:
        d["dir"] = f"{rec.sender}>{OTHER[rec.sender]}"
    optional = {"n": rec.n, "type": rec.type, "session_id": rec.session_id, "bytes": rec.size,
                "kind": rec.event, "latency_ms": rec.latency_ms, "text": rec.text or None}
    d.update({k: v for k, v in optional.items() if v is not None})
    if rec.answers is not None:
        d["answers"] = {"n": rec.answers[0], "type": rec.answers[1]}
    if rec.fields:
        d["fields"] = rec.fields
    d["failures"] = [{"id": f.failure_id, "severity": f.severity, "detail": f.message, "evidence": f.evidence}
                     for f in rec.flags]
    return d
