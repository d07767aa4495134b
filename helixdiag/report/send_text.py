"""The terminal view of a `send` exchange: its figures, every finding, where --save wrote,
then the verdict line (all that -q leaves); and the figures so far when it is interrupted."""

from __future__ import annotations

import os

from rich.markup import escape
from rich.table import Table

from helixdiag.client import ExchangeResult
from helixdiag.terminal import count


def render(terminal, result: ExchangeResult, *, saved_to: str | None = None) -> None:
    t = terminal
    d = result.to_dict()
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="muted")
    table.add_column()
    f = d["frames"]
    if result.scanout is not None:  # a subscriber sends nothing: its figures are the subscription's
        for label, value in result.scanout.rows(result):
            table.add_row(label, escape(value))
    else:
        table.add_row("frames", f"{f['sent']} sent · {f['received']} received · {f['decoded']} decoded · "
                                f"{f['keyframes']} keyframes")
    table.add_row("rate", f"{d['fps']:.1f} frames/s over {d['elapsed_s']:.2f} s")
    if d["latency_ms"]:
        lat = d["latency_ms"]
        label = "inter-arrival" if result.mode == "scanout" else "latency"
        table.add_row(label, f"p50 {lat['p50']:.1f} ms · p95 {lat['p95']:.1f} ms · p99 {lat['p99']:.1f} ms")
    if f["received"]:
        table.add_row("size", f"{d['bytes_per_frame'] / 1000:.1f} kB/frame · {d['bitrate_bps'] / 1e6:.2f} Mbit/s")
    if d["h264"]["profile"]:
        table.add_row("h264", f"{d['h264']['profile']} {d['h264']['size']}")
    if d["psnr_db"]:
        table.add_row("picture", f"PSNR min {d['psnr_db']['min']} dB · mean {d['psnr_db']['mean']} dB")
    t.print(table)
    for finding in result.findings.values():
        t.finding(finding)
    if saved_to:
        _saved(t, saved_to, f["received"])
    _verdict(t, result)


def interrupted(terminal, mode: str, sent: int, received: int, h264_bytes: int, elapsed: float) -> None:
    """What was measured before Ctrl-C, on one line (the error line says `interrupted`)."""
    rate = received / elapsed if elapsed > 0 else 0.0
    frames = f"{received} received" if mode == "scanout" else f"{sent} sent · {received} received"
    size = f" · {h264_bytes / received / 1000:.1f} kB/frame" if received else ""
    terminal.verdict(f"so far: {frames} · {rate:.1f} frames/s over {elapsed:.2f} s{size}")


def _saved(t, path: str, frames: int) -> None:
    """Where --save wrote, and how much."""
    size = os.path.getsize(path) if os.path.isfile(path) else 0
    t.print(f"saved {size} bytes of H.264 (Annex-B, {count(frames, 'frame')}) "
            f"to {escape(os.path.abspath(path))}", soft_wrap=True)


def _verdict(t, result: ExchangeResult) -> None:
    """The last line, the one -q keeps."""
    status = result.status
    if status == "pass":
        t.verdict("[pass]PASS[/pass] " + (escape(result.scanout.verdict(result)) if result.scanout is not None
                                          else "every reply valid, decoded and matching what was sent"))
        return
    ids = ", ".join(f"[id]{fid}[/id]" for fid, f in result.findings.items() if f.severity == status)
    f = result.to_dict()["frames"]
    if result.scanout is not None:
        t.verdict(f"[{status}]{status.upper()}[/{status}] {ids} · {escape(result.scanout.verdict(result))}")
        return
    t.verdict(f"[{status}]{status.upper()}[/{status}] {ids} · {f['sent']} sent · "
              f"{f['received']} received")
