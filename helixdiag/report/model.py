"""The report document of docs/report.md, built from probe results and the diagnosis."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
from dataclasses import dataclass, field
from typing import Any

from helixdiag import __version__
from helixdiag.results import Diagnosis, ProbeResult
from helixdiag.timefmt import iso_time

SCHEMA_ID = "helixdiag.report/v1"
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")


@dataclass
class Report:
    started_at: float
    duration_ms: int
    environment: dict[str, Any]
    config: dict[str, Any]
    probes: list[ProbeResult]
    diagnosis: Diagnosis
    topology: dict[str, Any] | None = None
    redactions: list[str] = field(default_factory=list)
    redact_paths: bool = False  # also hide the home directory and the user name
    # The raw tool output behind the facts (name → text), for --bundle only: not in the JSON.
    raw_outputs: dict[str, str] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        doc = {
            "schema": SCHEMA_ID,
            "tool": {"name": "helixdiag", "version": __version__},
            "started_at": iso_time(self.started_at),
            "duration_ms": self.duration_ms,
            "environment": self.environment,
            "config": self.config,
            "topology": self.topology,
            "probes": [p.to_dict() for p in self.probes],
            "diagnosis": self.diagnosis.to_dict(),
            "redactions": [],
        }
        redactions: set[str] = set(self.redactions)
        secrets = secret_values()
        if self.redact_paths:
            secrets.update(path_values())
        doc = redact(doc, secrets, redactions)
        doc["redactions"] = sorted(redactions)
        return doc

    def redacted(self) -> Report:
        """A copy with secrets (and, with redact_paths, home and user) replaced — for the
        text view, which renders from objects rather than from `to_dict()`."""
        secrets = secret_values()
        if self.redact_paths:
            secrets.update(path_values())
        seen: set[str] = set()

        def clean(obj):
            return dataclasses.replace(obj, **{
                f.name: redact(getattr(obj, f.name), secrets, seen)
                for f in dataclasses.fields(obj) if isinstance(getattr(obj, f.name), str | dict | list)
            })

        diagnosis = clean(self.diagnosis)
        if diagnosis.root_cause is not None:
            diagnosis = dataclasses.replace(diagnosis, root_cause=clean(diagnosis.root_cause))
        copy = dataclasses.replace(self, probes=[clean(p) for p in self.probes], diagnosis=diagnosis,
                                   config=redact(self.config, secrets, seen),
                                   topology=redact(self.topology, secrets, seen))
        copy.redactions = sorted(set(self.redactions) | seen)
        return copy

    @property
    def exit_code(self) -> int:
        return 1 if self.diagnosis.status == "fail" else 0


def secret_values(env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment values whose names say they are secret (docs/report.md), longest first."""
    env = os.environ if env is None else env
    found = {name: value for name, value in env.items()
             if value and len(value) >= 4 and any(w in name.upper() for w in SECRET_WORDS)}
    return dict(sorted(found.items(), key=lambda kv: -len(kv[1])))


def path_values() -> dict[str, str]:
    """`--redact-paths`: the home directory, then the user name (longest first)."""
    import getpass

    found = {}
    home = os.path.expanduser("~")
    if home not in ("/", "") and len(home) > 1:
        found["path:home"] = home
    with contextlib.suppress(Exception):
        user = getpass.getuser()
        if len(user) >= 3:
            found["path:user"] = user
    return found


def redact(value: Any, secrets: dict[str, str], seen: set[str]) -> Any:
    """Replace every occurrence of a secret value anywhere in the document."""
    if isinstance(value, str):
        for name, secret in secrets.items():
            if secret in value:
                label = name if name.startswith("path:") else f"env:{name}"
                value = value.replace(secret, f"<redacted:{label.split(':', 1)[1]}>")
                seen.add(label)
        return value
    if isinstance(value, dict):
        return {k: redact(v, secrets, seen) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, secrets, seen) for v in value]
    return value


def environment(side: str, versions: dict[str, str | None]) -> dict[str, Any]:
    return {"os": f"{platform.system()} {platform.release()}", "arch": platform.machine(),
            "side": side, "hostname": platform.node(), "versions": versions}
