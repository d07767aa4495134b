"""The terminal view: the path hop by hop, guest → host, the broken hop marked, and the
root cause with its evidence and remedy under it (long lines hang under their label).
`-v` lists every probe's evidence, long values cut on a word boundary. The last line is the
verdict with the root cause's id — all that `-q` leaves."""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from helixdiag.report.hops import RANK, hops
from helixdiag.report.model import Report
from helixdiag.results import ProbeResult, Status
from helixdiag.terminal import hanging

SYMBOL = {
    Status.PASS: "✔", Status.WARN: "▲", Status.FAIL: "✘", Status.ERROR: "‼",
    Status.BLOCKED: "⊘", Status.SKIP: "·",
}
def render(terminal, report: Report, *, verdict: bool = True) -> None:
    """`verdict=False`: the last line is ordinary output (the caller prints its own verdict)."""
    t = terminal
    report = report.redacted()
    diag = report.diagnosis
    root = diag.root_cause
    symptom_probes = {s["probe"] for s in diag.symptoms}
    topo = report.topology or {}
    cfg = report.config
    guest = cfg.get("guest") or {}
    side = f"host + guest (via {guest['prefix']})" if guest.get("prefix") else cfg.get("side")
    places = cfg.get("places") or {}
    if len(places) > 1:
        side = "host + " + " + ".join(f"{name} (via {place['prefix']})" for name, place in places.items())
    head = f"helixdiag run — side {side}"
    if topo:
        head += f" · topology {topo.get('kind')} ({topo.get('kind_source')})"
        if topo.get("listen_port"):
            head += f" · port {topo['listen_port']}"
        if topo.get("socket"):
            head += f" · socket {topo['socket']}"
    t.print(Text(head, style="bold"))
    if elsewhere := topo.get("also_on_this_machine"):
        # Other VMs, socats and test servers: named so nobody mistakes them for this path.
        t.print(Text(f"also on this machine, not judged: {'; '.join(elsewhere)}", style="muted"))

    table = Table(show_header=False, box=None, pad_edge=False, expand=False)
    table.add_column("side", style="muted", no_wrap=True)
    table.add_column("layer", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("what")
    previous_side = None
    for hop in hops(report):
        layer, mine, status, speaker = hop.layer, hop.probes, hop.status, hop.speaker
        side = str(layer.side) if str(layer.side) != previous_side else ""
        previous_side = str(layer.side)
        what = _describe(speaker, status)
        if speaker and speaker.place and len(places) > 1:  # which place speaks for the layer
            what = f"[muted]{speaker.place}:[/muted] {what}"
        if root and speaker and speaker.id == root.probe:
            what += "  [fail]◀ root cause[/fail]"
        elif speaker and speaker.id in symptom_probes:
            what += "  [muted](symptom)[/muted]"
        table.add_row(side, layer.name, f"[{status}]{SYMBOL[status]} {status}[/{status}]", what)
        if t.verbosity > 0:
            for p in mine:
                table.add_row("", "", "", f"[muted]{p.id}:[/muted] [{p.status}]{p.status}[/{p.status}] "
                                          f"{escape(p.summary)}")
                for key, value in p.evidence.items():
                    table.add_row("", "", "", hanging(f"    {key} =", _short(value), style="muted",
                                                      text_style="muted"))
    t.print(table)

    if root:
        t.print()
        t.print(f"[fail]ROOT CAUSE[/fail] [id]{root.failure_id}[/id] "
                f"[muted]({root.layer} · {root.probe})[/muted]")
        probe = next((p for p in report.probes if p.id == root.probe), None)
        if probe:
            t.labelled("", probe.summary)
            for key, value in list(probe.evidence.items())[:8]:
                t.labelled(f"{key}:", _short(value), style="muted")
        t.labelled("remedy:", root.remedy)
        t.labelled("more:", f"helixdiag explain {root.failure_id}  (docs/failures/{root.failure_id}.md)",
                   style="muted")
    others = [f for f in diag.findings if not root or f != root.failure_id]
    if others:
        t.print("[muted]also found:[/muted] " + ", ".join(f"[id]{f}[/id]" for f in others))

    counts: dict[str, int] = {}
    for p in report.probes:
        counts[str(p.status)] = counts.get(str(p.status), 0) + 1
    tally = ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: RANK.index(Status(kv[0]))))
    cause = f" · root cause [id]{root.failure_id}[/id]" if root else ""
    line = (f"[{diag.status}]{diag.status.upper()}[/{diag.status}]{cause} · {tally} · "
            f"{report.duration_ms / 1000:.2f} s")
    (t.verdict if verdict else t.print)(line)


def _describe(result: ProbeResult | None, status: Status) -> str:
    if result is None:
        return ""
    text = escape(result.summary)
    if result.failure_id and status in (Status.FAIL, Status.WARN):
        return f"[id]{result.failure_id}[/id] {text}"
    if status == Status.SKIP:
        return f"[muted]{text}[/muted]"
    return text


def _short(value: Any, limit: int = 160) -> str:
    """The value as text, at most `limit` characters: cut at the last space before the limit
    (a hard cut only when there is none in its second half), then an ellipsis."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"
