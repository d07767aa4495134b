"""Which helixdiag modules the guest side needs: every module the guest agent's entry and
the guest probes import when they are loaded, followed through the code (not a hand-kept
list), so a new import in a guest probe is carried — or, if it pulls in numpy, caught by
tests/test_agent_payload.py.

Only imports that run at load time count: those under `if TYPE_CHECKING:` never run, and an
import inside a function is the host-only seam some modules keep (the default judge of an
exchange, the synthetic frames), which the agent never calls.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import helixdiag

PACKAGE_DIR = Path(helixdiag.__file__).resolve().parent
ENTRY = "helixdiag.agent.guest"


def source_file(module: str) -> Path | None:
    """The .py file of a helixdiag module (a package's __init__.py), or None."""
    base = PACKAGE_DIR.parent.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def load_time_imports(tree: ast.Module) -> Iterator[tuple[str, list[str]]]:
    """(module, names) of each import that runs when the module loads."""
    def walk(body: Iterable[ast.stmt]) -> Iterator[tuple[str, list[str]]]:
        for node in body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield alias.name, []
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                yield node.module, [alias.name for alias in node.names]
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    yield from walk(node.body)
                yield from walk(node.orelse)
            elif isinstance(node, ast.Try):
                for part in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                    yield from walk(part)
            elif isinstance(node, ast.ClassDef):
                yield from walk(node.body)
    yield from walk(tree.body)


def _helixdiag_targets(module: str, names: list[str]) -> set[str]:
    """The helixdiag modules an import loads: the module, its parent packages, and for
    `from package import name` the submodule `name` when there is one."""
    if module.split(".")[0] != "helixdiag":
        return set()
    parts = module.split(".")
    found = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    found |= {f"{module}.{name}" for name in names if source_file(f"{module}.{name}")}
    return {m for m in found if source_file(m)}


def shipped_modules(entries: Iterable[str]) -> list[str]:
    """Every helixdiag module loading `entries` loads, sorted."""
    todo = [m for entry in entries for m in _helixdiag_targets(entry, [])]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        tree = ast.parse(source_file(module).read_text(encoding="utf-8"))  # type: ignore[union-attr]
        for target, names in load_time_imports(tree):
            todo.extend(_helixdiag_targets(target, names) - seen)
    return sorted(seen)


def guest_probe_modules() -> list[str]:
    """The modules that register guest-side probes (the registry knows; no list to keep)."""
    from helixdiag.layers import Side
    from helixdiag.probes import all_probes

    return sorted({spec.func.__module__ for spec in all_probes() if spec.side == Side.GUEST})


def agent_modules() -> list[str]:
    return shipped_modules([ENTRY, *guest_probe_modules()])
