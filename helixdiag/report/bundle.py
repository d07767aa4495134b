"""`run --bundle PATH`: one .tar.gz for the ticket — the JSON and HTML reports, the
redacted tails of the logs the run read, and a manifest — with a size cap. The manifest's
`redactions` lists every redaction applied to any file in the bundle."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time

from helixdiag import __version__
from helixdiag.report import html
from helixdiag.report.model import Report, path_values, redact, secret_values
from helixdiag.timefmt import iso_now

LOG_TAIL = 256 * 1024  # bytes of each log's end
MAX_BUNDLE = 8 * 1024 * 1024  # uncompressed, all members together


def write(report: Report, path: str) -> dict:
    """Write the bundle; returns its manifest."""
    doc = report.to_dict()
    in_report = set(doc["redactions"])
    # (name, data, the redactions applied to that member)
    members: list[tuple[str, bytes, set[str]]] = [
        ("report.json", json.dumps(doc, indent=2, default=str).encode(), in_report),
        ("report.html", html.render(report).encode(), in_report),
    ]
    secrets = secret_values()
    if report.redact_paths:
        secrets.update(path_values())
    for key in ("qemu_log", "gst_log"):
        log = doc["config"].get(key)
        raw_path = report.config.get(key)
        if raw_path and os.path.isfile(raw_path):
            applied: set[str] = set()
            members.append((f"logs/{key}.tail.txt", _tail(raw_path, secrets, applied), applied))
        elif log:
            members.append((f"logs/{key}.missing.txt", f"{log}: not readable when the run was made\n".encode(),
                            in_report))
    for name, text in report.raw_outputs.items():
        # What the facts were read from (lsof, ps, otool, QEMU's command line), redacted.
        applied = set()
        members.append((f"raw/{name}", redact(text, secrets, applied).encode(), applied))
    total = 0
    kept: list[tuple[str, bytes, set[str]]] = []
    dropped: list[str] = []
    for name, data, applied in members:
        if total + len(data) > MAX_BUNDLE:
            dropped.append(name)
            continue
        kept.append((name, data, applied))
        total += len(data)
    manifest = {
        "tool": {"name": "helixdiag", "version": __version__},
        "created": iso_now(),
        "diagnosis": doc["diagnosis"]["status"],
        "root_cause": (doc["diagnosis"]["root_cause"] or {}).get("failure_id"),
        "files": [{"name": n, "bytes": len(d), "sha256": hashlib.sha256(d).hexdigest(),
                   "redactions": sorted(a)} for n, d, a in kept],
        "dropped_over_cap": dropped,
        "redactions": sorted(set().union(*(a for _, _, a in kept))),
    }
    files = [(n, d) for n, d, _ in kept]
    files.append(("manifest.json", json.dumps(manifest, indent=2).encode()))
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files:
            info = tarfile.TarInfo(f"helixdiag-report/{name}")
            info.size = len(data)
            info.mtime = int(time.time())
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return manifest


def _tail(path: str, secrets: dict[str, str], applied: set[str]) -> bytes:
    """The log's last LOG_TAIL bytes from a whole line on, redacted (labels into `applied`)."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - LOG_TAIL))
        data = fh.read(LOG_TAIL)
    text = data.decode("utf-8", errors="replace")
    if size > LOG_TAIL:
        text = text.split("\n", 1)[-1]  # start at a whole line
        text = f"[… first {size - LOG_TAIL} bytes omitted]\n" + text
    return redact(text, secrets, applied).encode()
