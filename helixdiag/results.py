"""The words every part of a run speaks: a probe's `Outcome` and its `Status`, the recorded
`ProbeResult`, and the `Diagnosis` with its `RootCause`.

One module that the probes, the diagnosis (graph.py) and the report all import, so none of
them imports another for its vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from helixdiag.compat import StrEnum

if TYPE_CHECKING:
    from helixdiag.findings import Finding


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"
    BLOCKED = "blocked"
    ERROR = "error"


@dataclass
class Outcome:
    """What a probe concluded. `remedy` defaults to the catalog's remedy for the id."""

    status: Status
    summary: str
    failure_id: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    remedy: str | None = None


def passed(summary: str, **evidence: Any) -> Outcome:
    return Outcome(Status.PASS, summary, evidence=evidence)


def failed(failure_id: str, summary: str, *, remedy: str | None = None, **evidence: Any) -> Outcome:
    return Outcome(Status.FAIL, summary, failure_id, evidence, remedy)


def warned(failure_id: str, summary: str, *, remedy: str | None = None, **evidence: Any) -> Outcome:
    return Outcome(Status.WARN, summary, failure_id, evidence, remedy)


def from_findings(findings: list[Finding], pass_summary: str, evidence: dict, remedy_suffix: str = "") -> Outcome:
    """The most severe finding speaks for the probe; all of them stay in the evidence."""
    fails = [f for f in findings if f.severity == "fail"]
    warns = [f for f in findings if f.severity == "warn"]
    first = (fails or warns or [None])[0]
    if first is None:
        return passed(pass_summary, **evidence)
    more = len(fails) + len(warns) - 1
    summary = first.message + (f" (and {more} more finding{'s' if more > 1 else ''})" if more > 0 else "")
    remedy = first.remedy + remedy_suffix
    if fails:
        return failed(first.failure_id, summary, remedy=remedy, **evidence)
    return warned(first.failure_id, summary, remedy=remedy, **evidence)


def skipped(reason: str, **evidence: Any) -> Outcome:
    return Outcome(Status.SKIP, reason, evidence=evidence)


def blocked(reason: str, **evidence: Any) -> Outcome:
    return Outcome(Status.BLOCKED, reason, evidence=evidence)


@dataclass
class ProbeResult:
    id: str
    layer: str
    side: str
    status: Status
    summary: str
    failure_id: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    remedy: str | None = None
    duration_ms: int = 0
    # Set when one report merges several machines (`run --guest`): the place the probe ran
    # in ("vm", "desktop"; None on the host) and who observed its facts ("host", "guest:vm").
    place: str | None = None
    observed_on: str | None = None

    def to_dict(self) -> dict[str, Any]:
        where = {k: v for k, v in (("place", self.place), ("observed_on", self.observed_on)) if v is not None}
        return {
            "id": self.id, "layer": self.layer, "side": self.side, "status": str(self.status),
            "summary": self.summary, "failure_id": self.failure_id, "evidence": self.evidence,
            "remedy": self.remedy, "duration_ms": self.duration_ms, **where,
        }


@dataclass
class RootCause:
    failure_id: str
    layer: str
    probe: str
    explanation: str
    remedy: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Diagnosis:
    status: str  # pass | warn | fail
    root_cause: RootCause | None
    findings: list[str]
    symptoms: list[dict[str, str]] = field(default_factory=list)  # explained by the root cause

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "root_cause": self.root_cause.to_dict() if self.root_cause else None,
            "findings": self.findings,
            "symptoms": self.symptoms,
        }
