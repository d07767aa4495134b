"""The guest side of the guest agent: what runs on the guest, from the payload's zip.

The guest probes, the runner and the facts are the very modules `helixdiag run --side
guest` uses; only the process table comes from /proc (no psutil) and the frame exchange is
recorded for the host (no PyAV). Prints one helixdiag.report/v1 document on stdout.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

from helixdiag import layers, runner
from helixdiag.agent.recorder import recording_exchange
from helixdiag.config import resolve
from helixdiag.errors import HelixdiagError
from helixdiag.observe.facts import Observations
from helixdiag.observe.procfs import ProcfsBackend
from helixdiag.probes import REGISTRY


def main(spec: dict[str, Any]) -> int:
    """`spec`: the probe modules to load, the options (as text), the names asked for and the
    layers that apply in this place. Returns the exit code `run` would."""
    for module in spec["modules"]:
        importlib.import_module(module)
    try:
        # Only the options the host forwarded count (no profile, no HELIXDIAG_* of the guest).
        cfg = resolve({**spec["options"], "side": "guest"}, env={})
    except HelixdiagError as exc:
        print(f"helixdiag (guest agent): {exc}", file=sys.stderr)
        return 2
    names = set(spec.get("names") or ())
    wanted = set(spec.get("layers") or layers.LAYER_NAMES)
    order = {name: i for i, name in enumerate(layers.LAYER_NAMES)}
    probes = sorted((p for p in REGISTRY.values() if p.side == layers.Side.GUEST and p.layer in wanted
                     and (not names or p.id in names or p.layer in names)), key=lambda p: order[p.layer])
    run = runner.Runner(cfg, probes, explicit=names, observations=Observations(backend=ProcfsBackend()))
    run.ctx.exchange = recording_exchange
    report = run.run()
    sys.stdout.write(json.dumps(report.to_dict()) + "\n")
    sys.stdout.flush()
    return report.exit_code
