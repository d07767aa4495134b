"""The JSON report and the schema it follows (shipped in the package)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def schema() -> dict[str, Any]:
    return json.loads(resources.files("helixdiag.report").joinpath("schema.json").read_text())
