"""A finding: one failure id seen, with the evidence behind it.

Shared by everything that judges (the client, the log scanner, the pipeline lint, the
probes), so every finding prints its id and takes its severity from the one catalog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from helixdiag.failures import CATALOG, Severity


@dataclass
class Finding:
    failure_id: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    count: int = 1
    # The evidence can make a finding weaker than its catalog severity (e.g. no frame seen
    # but nothing proves the host failed: "warn"); None takes the catalog's.
    level: str | None = None

    def __post_init__(self) -> None:
        if self.failure_id not in CATALOG:
            raise ValueError(f"unknown failure id {self.failure_id!r}: add it to helixdiag/failures.py")
        if self.level is not None and self.level not in {str(s) for s in Severity}:
            raise ValueError(f"unknown severity {self.level!r}")
        # Messages quote peers and logs: a control character must never reach a terminal.
        self.message = printable(self.message)

    @property
    def severity(self) -> str:
        return self.level or str(CATALOG[self.failure_id].severity)

    @property
    def remedy(self) -> str:
        return CATALOG[self.failure_id].remedy

    def to_dict(self) -> dict[str, Any]:
        return {
            "failure_id": self.failure_id,
            "severity": self.severity,
            "message": self.message,
            "count": self.count,
            "evidence": self.evidence,
        }


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F) if c != 0x09}


def printable(text: str) -> str:
    """Control characters (ESC, NUL, CR, …) shown as `\\xNN` instead of acting on a terminal."""
    return text.translate(_CONTROL)


def worst_status(findings: list[Finding] | Any) -> str:
    """pass | warn | fail for a collection of findings."""
    severities = {f.severity for f in findings}
    if str(Severity.FAIL) in severities:
        return "fail"
    return "warn" if str(Severity.WARN) in severities else "pass"


class HasFindings:
    """What every result that carries findings offers (a log summary, a lint result, a send
    exchange): its worst status and its failure ids. `findings` is a list, or a dict of
    findings by id."""

    findings: Any

    def _findings(self) -> list[Finding]:
        return list(self.findings.values()) if isinstance(self.findings, dict) else list(self.findings)

    @property
    def status(self) -> str:
        return worst_status(self._findings())

    @property
    def failure_ids(self) -> list[str]:
        return [f.failure_id for f in self._findings()]
