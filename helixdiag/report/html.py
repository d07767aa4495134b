"""One self-contained HTML file for the bug ticket: the path drawn hop by hop (guest → host)
with each layer coloured by status and the root cause marked, then the root cause's
evidence and remedy, every probe, the environment and timings. No scripts, no external
resources: it opens anywhere, offline, and prints. `render_scenarios` puts every scenario
of `selftest --break all` on one such page."""

from __future__ import annotations

import html
import json
from typing import Any

from helixdiag.report.hops import hops
from helixdiag.report.model import Report
from helixdiag.results import Status

COLOURS = {
    "pass": "#1a7f37", "warn": "#bf8700", "fail": "#cf222e", "error": "#8250df",
    "blocked": "#6e7781", "skip": "#afb8c1",
}

CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1f2328;max-width:1100px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:20px 0 6px}
.muted{color:#656d76} code,pre{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:#f6f8fa;padding:8px;border-radius:6px;overflow-x:auto;white-space:pre-wrap;word-break:break-word}
.verdict{display:inline-block;color:#fff;border-radius:6px;padding:2px 10px;font-weight:600}
.path{display:flex;flex-wrap:wrap;align-items:stretch;gap:0;margin:16px 0}
.hop{flex:1 1 110px;min-width:110px;border-radius:8px;padding:10px;color:#fff;position:relative;margin:4px 0}
.hop .name{font-weight:700} .hop .st{font-size:12px;text-transform:uppercase;opacity:.95}
.hop.root{outline:4px solid #000;outline-offset:2px}
.hop .tag{position:absolute;top:-10px;right:6px;background:#000;color:#fff;font-size:11px;border-radius:4px;padding:0 5px}
.arrow{align-self:center;font-size:20px;color:#656d76;padding:0 4px}
.side{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:#656d76}
table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #d0d7de;padding:5px 6px;text-align:left;vertical-align:top}
.pill{display:inline-block;border-radius:10px;padding:0 8px;color:#fff;font-size:12px}
.root-box{border:2px solid #cf222e;border-radius:8px;padding:12px 14px;background:#fff5f5}
"""


def render(report: Report) -> str:
    doc = report.to_dict()  # redacted: the HTML shows nothing the JSON would hide
    status = doc["diagnosis"]["status"]
    return _page(f"helixdiag report — {status.upper()}", [
        f"<h1>helixdiag report <span class='verdict' style='background:{COLOURS[status]}'>"
        f"{_e(status.upper())}</span></h1>",
        *_sections(report, doc, "h2"),
    ])


def render_scenarios(rows: list[tuple[str, str, bool | None, int]], reports: dict[str, Report]) -> str:
    """`selftest --break all --html`: one page, the table of scenarios first (each linked to
    its section), then every scenario's full report. rows: (label, diagnosed, ok, ms);
    ok None = not run here."""
    ran = [r for r in rows if r[2] is not None]
    ok_all = all(r[2] is not False for r in rows)
    verdict = "pass" if ok_all else "fail"
    parts = [
        f"<h1>helixdiag selftest --break all <span class='verdict' style='background:{COLOURS[verdict]}'>"
        f"{sum(1 for r in ran if r[2])} of {len(ran)} matched</span></h1>",
        "<table><tr><th>broken layer</th><th>diagnosed root cause</th><th>match</th><th>time</th></tr>",
    ]
    for i, (label, got, ok, ms) in enumerate(rows):
        match = _pill("skip") if ok is None else _pill("pass") if ok else _pill("fail")
        name = f"<a href='#s{i}'>{_e(label)}</a>" if label in reports else _e(label)
        parts.append(f"<tr><td>{name}</td><td><code>{_e(got)}</code></td><td>{match}</td>"
                     f"<td>{ms / 1000:.2f} s</td></tr>")
    parts.append("</table>")
    for i, (label, _got, _ok, _ms) in enumerate(rows):
        report = reports.get(label)
        if report is None:
            continue
        doc = report.to_dict()
        status = doc["diagnosis"]["status"]
        parts.append(f"<section id='s{i}'><h2>{_e(label)} <span class='verdict' "
                     f"style='background:{COLOURS[status]}'>{_e(status.upper())}</span></h2>")
        parts += _sections(report, doc, "h3")
        parts.append("</section>")
    return _page(f"helixdiag selftest --break all — {verdict.upper()}", parts)


def _page(title: str, body: list[str]) -> str:
    return "\n".join([
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        *body,
        "</body></html>\n",
    ])


def _sections(report: Report, doc: dict[str, Any], h: str) -> list[str]:
    """One report's body: headline facts, the path, the root cause, probes, environment."""
    diag = doc["diagnosis"]
    root = diag["root_cause"]
    probes = doc["probes"]
    status = diag["status"]
    parts = [
        f"<div class='muted'>{_e(doc['started_at'])} · {doc['duration_ms']} ms · "
        f"helixdiag {_e(doc['tool']['version'])} · side {_e(doc['environment'].get('side', ''))}</div>",
        _path(report, root),
    ]
    if root:
        rp = next((p for p in probes if p["id"] == root["probe"]), None)
        parts += [
            f"<{h}>Root cause</{h}><div class='root-box'>",
            f"<div><b><code>{_e(root['failure_id'])}</code></b> "
            f"<span class='muted'>({_e(root['layer'])} · {_e(root['probe'])})</span></div>",
            f"<p>{_e(root['explanation'])}</p>",
            f"<p><b>Remedy:</b> {_e(root['remedy'])}</p>",
            f"<p class='muted'>More: <code>helixdiag explain {_e(root['failure_id'])}</code></p>",
        ]
        if rp:
            parts.append(f"<b>Evidence</b><pre>{_e(json.dumps(rp['evidence'], indent=2, default=str))}</pre>")
        parts.append("</div>")
        if diag.get("symptoms"):
            items = "".join(f"<li><code>{_e(s['failure_id'])}</code> ({_e(s['probe'])})</li>"
                            for s in diag["symptoms"])
            parts.append(f"<p>Explained by the root cause (symptoms):</p><ul>{items}</ul>")
    elif status == "pass":
        parts.append(f"<{h}>Result</{h}><p>No failure found: every layer that applies passed.</p>")
    if diag["findings"]:
        parts.append("<p>Findings: " + ", ".join(f"<code>{_e(f)}</code>" for f in diag["findings"]) + "</p>")

    parts.append(f"<{h}>Probes</{h}><table><tr><th>probe</th><th>status</th><th>summary</th><th>ms</th></tr>")
    for p in probes:
        fid = f" <code>{_e(p['failure_id'])}</code>" if p["failure_id"] else ""
        details = ""
        if p["evidence"] or p["remedy"]:
            body = _e(json.dumps(p["evidence"], indent=2, default=str))
            remedy = f"<p><b>Remedy:</b> {_e(p['remedy'])}</p>" if p["remedy"] else ""
            details = f"<details><summary class='muted'>evidence</summary>{remedy}<pre>{body}</pre></details>"
        parts.append(
            f"<tr><td><code>{_e(p['id'])}</code><div class='side'>{_e(p['layer'])} · {_e(p['side'])}</div></td>"
            f"<td>{_pill(p['status'])}</td><td>{fid} {_e(p['summary'])}{details}</td>"
            f"<td>{p['duration_ms']}</td></tr>")
    parts.append("</table>")
    parts.append(f"<{h}>Environment and configuration</{h}>")
    parts.append(f"<pre>{_e(json.dumps({'environment': doc['environment'], 'config': doc['config'], 'topology': doc['topology']}, indent=2, default=str))}</pre>")
    if doc["redactions"]:
        parts.append("<p class='muted'>Redacted: " + ", ".join(_e(r) for r in doc["redactions"]) + "</p>")
    return parts


def _path(report: Report, root: dict[str, Any] | None) -> str:
    """The hops in data-path order, guest first, each coloured by its layer's status."""
    out = ["<div class='path' role='list' aria-label='the video path, guest to host'>"]
    first = True
    for hop in hops(report):
        layer, status, speaker = hop.layer, hop.status, hop.speaker
        is_root = bool(root and root["layer"] == layer.name)
        if not first:
            out.append("<div class='arrow'>→</div>")
        first = False
        text_colour = "#1f2328" if status == Status.SKIP else "#fff"
        summary = speaker.summary if speaker else ""
        out.append(
            f"<div class='hop{' root' if is_root else ''}' role='listitem' data-layer='{_e(layer.name)}' "
            f"data-status='{_e(str(status))}' style='background:{COLOURS[str(status)]};color:{text_colour}' "
            f"title='{_e(summary)}'>"
            + ("<span class='tag'>ROOT CAUSE</span>" if is_root else "")
            + f"<div class='side' style='color:inherit;opacity:.85'>{_e(str(layer.side))}</div>"
            f"<div class='name'>{_e(layer.name)}</div><div class='st'>{_e(str(status))}</div></div>")
    out.append("</div>")
    return "".join(out)


def _pill(status: str) -> str:
    colour = COLOURS.get(status, "#6e7781")
    text_colour = "#1f2328" if status == "skip" else "#fff"
    return f"<span class='pill' style='background:{colour};color:{text_colour}'>{_e(status)}</span>"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
