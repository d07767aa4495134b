"""JUnit XML: one testcase per probe, so CI systems show the broken hop by name (and one per
scenario for `selftest --break all`)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from helixdiag.report.model import Report
from helixdiag.results import Status


def render(report: Report) -> str:
    doc = report.to_dict()  # redacted
    probes = doc["probes"]
    count = {s: sum(1 for p in probes if p["status"] == s) for s in ("fail", "error", "skip", "blocked")}
    suite = ET.Element("testsuite", {
        "name": "helixdiag", "tests": str(len(probes)),
        "failures": str(count["fail"]), "errors": str(count["error"]),
        "skipped": str(count["skip"] + count["blocked"]),
        "time": f"{doc['duration_ms'] / 1000:.3f}", "timestamp": doc["started_at"],
    })
    props = ET.SubElement(suite, "properties")
    root = doc["diagnosis"]["root_cause"]
    for name, value in (("diagnosis", doc["diagnosis"]["status"]),
                        ("root_cause", root["failure_id"] if root else ""),
                        ("findings", ",".join(doc["diagnosis"]["findings"]))):
        ET.SubElement(props, "property", {"name": name, "value": value})
    for p in probes:
        case = ET.SubElement(suite, "testcase", {
            "classname": f"helixdiag.{p['layer']}", "name": p["id"], "time": f"{p['duration_ms'] / 1000:.3f}",
        })
        evidence = json.dumps(p["evidence"], indent=2, default=str)
        if p["status"] == Status.FAIL:
            is_root = root is not None and root["probe"] == p["id"]
            node = ET.SubElement(case, "failure", {
                "type": p["failure_id"] or "failure",
                "message": f"[{p['failure_id']}]{' (root cause)' if is_root else ''} {p['summary']}",
            })
            node.text = f"{p['summary']}\n\nremedy: {p['remedy']}\n\nevidence:\n{evidence}"
        elif p["status"] == Status.ERROR:
            ET.SubElement(case, "error", {"message": p["summary"]}).text = evidence
        elif p["status"] in (Status.SKIP, Status.BLOCKED):
            ET.SubElement(case, "skipped", {"message": f"{p['status']}: {p['summary']}"})
        else:
            out = ET.SubElement(case, "system-out")
            prefix = f"[{p['failure_id']}] warning: " if p["status"] == Status.WARN else ""
            out.text = f"{prefix}{p['summary']}\n{evidence}"
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def render_scenarios(rows: list[tuple[str, str, bool | None, int]]) -> str:
    """`selftest --break all --junit`: one testcase per scenario. rows: (label, diagnosed, ok,
    ms); ok None = not run here (skipped)."""
    suite = ET.Element("testsuite", {"name": "helixdiag-selftest", "tests": str(len(rows)),
                                     "failures": str(sum(1 for r in rows if not r[2]))})
    for label, got, ok, ms in rows:
        case = ET.SubElement(suite, "testcase", {"classname": "helixdiag.selftest", "name": label,
                                                 "time": f"{ms / 1000:.3f}"})
        if ok is None:
            ET.SubElement(case, "skipped", {"message": got})
        elif not ok:
            ET.SubElement(case, "failure", {"message": f"broke {label}, diagnosed {got}"})
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
