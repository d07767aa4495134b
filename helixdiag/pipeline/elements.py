"""`check_elements()`: ask the local GStreamer (gst-inspect-1.0) about a pipeline's elements.

Each element is looked up with `gst-inspect-1.0 ELEMENT`, every call bounded by a timeout
and all of them by a budget. A missing vsockenc is the `vsockenc-missing` finding; any
other missing element, and properties an element does not have, are notes. This is what
`lint(check=True)` and `helixdiag lint --check` add.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time

from helixdiag.findings import Finding
from helixdiag.pipeline.rules import RULES, _evidence
from helixdiag.pipeline.syntax import Pipeline, _as_pipeline

# ── --check: ask the local GStreamer ──────────────────────────────────────────────────

_PROP_LINE = re.compile(r"^  ([a-z][a-z0-9-]*)\s*:", re.MULTILINE)


def _inspect_properties(output: str) -> set[str] | None:
    start = output.find("Element Properties:")
    if start < 0:
        return None
    section = output[start:]
    end = re.search(r"^\S", section[len("Element Properties:"):], re.MULTILINE)
    if end:
        section = section[: len("Element Properties:") + end.start()]
    return set(_PROP_LINE.findall(section))


def check_elements(
    pipeline: str | Pipeline,
    *,
    timeout: float = 10.0,
    budget: float = 60.0,
    inspect: str = "gst-inspect-1.0",
) -> tuple[list[Finding], list[str]]:
    """Ask `gst-inspect-1.0 ELEMENT` about each element (each call bounded by `timeout`,
    all of them by `budget`). A missing vsockenc is `vsockenc-missing`; any other missing
    element, and properties an element does not have, are notes."""
    p = _as_pipeline(pipeline)
    exe = shutil.which(inspect)
    if exe is None:
        return [], [f"--check skipped: {inspect} is not installed here"]
    findings: list[Finding] = []
    notes: list[str] = []
    deadline = time.monotonic() + budget
    seen: dict[str, tuple[bool, set[str] | None] | None] = {}
    for el in p.elements:
        if el.uri:
            continue
        if el.factory not in seen:
            left = deadline - time.monotonic()
            if left <= 0:
                seen[el.factory] = None
                notes.append(f"--check: ran out of time before asking about {el.factory}")
                continue
            try:
                proc = subprocess.run([exe, el.factory], capture_output=True, text=True,
                                      timeout=min(timeout, left), stdin=subprocess.DEVNULL, check=False)
            except subprocess.TimeoutExpired:
                seen[el.factory] = None
                notes.append(f"--check: `{inspect} {el.factory}` timed out after {min(timeout, left):.0f} s")
                continue
            except OSError as exc:
                seen[el.factory] = None
                notes.append(f"--check: cannot run {inspect}: {exc.strerror or exc}")
                continue
            installed = proc.returncode == 0
            seen[el.factory] = (installed, _inspect_properties(proc.stdout) if installed else None)
            if not installed:
                if el.factory == "vsockenc":
                    rule = RULES["vsockenc-installed"]
                    findings.append(Finding(
                        rule.failure_id,
                        f"`{inspect} vsockenc` finds no such element here, so this pipeline cannot start",
                        _evidence(el, rule, inspect_exit=proc.returncode,
                                  inspect_output=(proc.stderr or proc.stdout).strip()[-300:]),
                    ))
                else:
                    notes.append(f"{el.label()}: `{inspect} {el.factory}` finds no such element on this machine")
        info = seen.get(el.factory)
        if info and info[0] and info[1]:
            unknown = sorted({p.key for p in el.props if "::" not in p.key} - info[1])
            if unknown:
                notes.append(f"{el.label()} has no propert{'ies' if len(unknown) > 1 else 'y'} "
                             f"{', '.join(unknown)} here (gst-inspect-1.0 {el.factory})")
    return findings, notes
