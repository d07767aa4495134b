"""The project stands alone: nothing a user reads cites the background notes the project was
built from (they are not shipped), and every relative link in the docs resolves.

User-facing text here: README.md, docs/**/*.md (the explain pages included), every
catalog entry's text, every lint rule (its statement and source) and the evidence the lint
attaches to a finding, every log signature's meaning, every probe's description
(`helixdiag list`), and each command's `--help`. The README's layout table and the
examples in the docs are checked too: they must be true and run as written.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from helixdiag import failures
from helixdiag.cli import cli
from helixdiag.logscan import SIGNATURES
from helixdiag.pipeline import lint
from helixdiag.pipeline.rules import RULES
from helixdiag.probes import all_probes

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
MARKDOWN = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]

_NAMES = r"(?:SPEC|PROTOCOL|FAILURES|PIPELINES|SCANOUT|PIPEWIRE-TESTING|DESIGN)"
CITATION = re.compile(
    rf"\b{_NAMES}\.md\b"  # a background file by name
    rf"|\b{_NAMES}\s*(?:§|#\s*\d)"  # "SPEC §6", "FAILURES #24"
    r"|(?:^|[\s(`'\"]|\.\./|/work/)shared/"  # the directory they live in
)


def citations(text: str) -> list[str]:
    """Each line of `text` that cites a background note, trimmed for the message."""
    return [line.strip()[:160] for line in text.splitlines() if CITATION.search(line)]


def test_the_pattern_catches_the_known_shapes_and_spares_the_projects_own_docs():
    for cited in ("see PROTOCOL.md §7", "(SPEC §6)", "FAILURES #24", "Background: FAILURES.md #24",
                  "[x](../shared/PROTOCOL.md)", "/work/shared/SCANOUT.md", "`shared/` notes",
                  "PIPEWIRE-TESTING.md", "DESIGN.md"):
        assert citations(cited), cited
    for fine in ("docs/protocol.md", "[protocol](../protocol.md)", "docs/failures/socket-stale.md",
                 "desktop/shared/17-scanout-setup.sh", "a shared-memory buffer", "H.264 §7.3"):
        assert not citations(fine), fine


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_markdown_cites_no_background_note(path):
    found = citations(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(REPO)} cites background notes users do not have: {found}"


SHIPPED = sorted(p for p in [*(REPO / "helixdiag").rglob("*"), *(REPO / "checks").glob("*.toml")]
                 if p.is_file() and p.suffix in (".py", ".json", ".lua", ".toml", ".md"))


def test_nothing_the_package_ships_cites_a_background_note():
    """Docstrings, comments, the report schema, the dissector, the profiles: a user reading any
    of them has only this project's docs."""
    found = {str(p.relative_to(REPO)): citations(p.read_text(encoding="utf-8")) for p in SHIPPED}
    found = {name: lines for name, lines in found.items() if lines}
    assert len(SHIPPED) > 100
    assert not found, f"shipped files cite background notes users do not have: {found}"


def test_catalog_text_cites_no_background_note():
    bad = {
        f"{entry.id}.{name}": found
        for entry in failures.CATALOG.values()
        for name in ("title", "explanation", "remedy")
        if (found := citations(getattr(entry, name)))
    }
    assert not bad, f"catalog entries cite background notes: {bad}"


def test_explain_pages_cite_no_background_note():
    bad = {fid: found for fid in failures.all_ids() if (found := citations(failures.page_text(fid)))}
    assert not bad, f"explain pages cite background notes: {bad}"


def test_every_lint_rule_has_a_source_users_can_open():
    assert RULES, "no lint rules found"
    for rule in RULES.values():
        text = f"{rule.statement} {rule.source}"
        assert not citations(text), f"lint rule {rule.name} cites a background note: {text}"
        if rule.source.startswith("https://"):
            continue
        page = REPO / rule.source.split("#")[0]
        assert page.is_file(), f"lint rule {rule.name}: {rule.source} does not exist"
        assert f"`{rule.name}`" in page.read_text(encoding="utf-8"), f"{rule.source} does not explain rule {rule.name}"


# Pipelines that break every lint rule between them (the notes included).
LINT_CASES = [
    "pipewiresrc always-copy=true ! video/x-raw,format=BGRx,framerate=30/1 ! queue max-size-buffers=1 "
    "leaky=downstream ! videoconvert ! videorate ! vsockenc bitrate=1 ! h264parse ! "
    "video/x-h264,profile=main ! fakesink",
    "pipewirezerocopysrc pipewire-node-id=5 buffer-type=dmabuf-passthrough ! queue ! "
    "vsockenc tcp-host=localhost ! fakesink",
    "pipewiresrc ! video/x-raw(memory:DMABuf),format=BGRx ! vsockenc socket-path=/tmp/s.sock ! fakesink",
    "pipewiresrc ! videoconvert ! videoscale ! queue ! vsockenc tcp-host=10.0.2.3 ! fakesink",
    "pipewiresrc always-copy=true ! videoconvert ! x264enc ! fakesink",
    "pipewirezerocopysrc ! vsockenc tcp-host=10.0.2.2 ! fakesink",
]


@pytest.mark.parametrize("text", LINT_CASES)
@pytest.mark.parametrize("kwargs", [{}, {"host": "10.0.2.2", "port": 41937}])
def test_lint_output_cites_no_background_note(text, kwargs):
    result = lint(text, **kwargs)
    assert result.findings or result.notes
    for finding in result.findings:
        shown = " ".join([finding.message, finding.remedy, *map(str, finding.evidence.values())])
        assert not citations(shown), (finding.failure_id, citations(shown))
    for note in result.notes:
        assert not citations(note), note


def test_log_signature_meanings_cite_no_background_note():
    bad = {s.name: s.meaning for s in SIGNATURES if citations(s.meaning)}
    assert not bad, f"log signatures cite background notes: {bad}"


def test_probe_descriptions_cite_no_background_note():
    probes = all_probes()
    assert len(probes) >= 20
    bad = {p.name: p.description for p in probes if citations(p.description)}
    assert not bad, f"probe descriptions (helixdiag list) cite background notes: {bad}"


def _commands():
    return [(), *((name,) for name in sorted(cli.commands))]


@pytest.mark.parametrize("args", _commands(), ids=lambda a: " ".join(a) or "helixdiag")
def test_help_cites_no_background_note(args):
    result = CliRunner().invoke(cli, ["--no-color", *args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert not citations(result.output), citations(result.output)


# ── links ─────────────────────────────────────────────────────────────────────────────

LINK = re.compile(r"\[[^\]]*\]\(\s*(<[^>]+>|[^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")


def relative_links(text: str) -> list[str]:
    """Markdown link targets that point into the repository (no URLs, no bare anchors)."""
    targets = []
    for target in (t.strip("<>") for t in LINK.findall(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def test_the_link_reader_sees_relative_targets_only():
    text = ("[a](docs/run.md) [b](../protocol.md#header) [c](https://x.org/y.md) [d](#top) "
            "[e](mailto:x@y) [f](<docs/x y.md>) [g](README.md \"title\")")
    assert relative_links(text) == ["docs/run.md", "../protocol.md", "docs/x y.md", "README.md"]


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_to_a_file_that_exists(path):
    broken = [t for t in relative_links(path.read_text(encoding="utf-8"))
              if not (path.parent / t).exists()]
    assert not broken, f"{path.relative_to(REPO)} links to missing files: {broken}"


# ── README: the layout table and the examples ─────────────────────────────────────────


def layout_rows() -> list[tuple[list[Path], list[Path]]]:
    """Per layout row: the paths its first cell names (siblings of the first one) and the
    files its description names (inside the row's directory: the first path if that is a
    directory, else its parent)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = re.search(r"^## Layout\n(.*?)(?=^## )", text, flags=re.S | re.M)
    assert table, "README.md has no Layout section"
    name = r"`([\w./-]+\.py|[\w./-]+/)`"
    rows = []
    for line in table.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.findall(name, cells[0]):
            continue
        first, *siblings = re.findall(name, cells[0])
        top = REPO / first
        here = top if first.endswith("/") else top.parent
        paths = [top, *(top.parent / n for n in siblings)]
        rows.append((paths, [here / n for n in re.findall(name, cells[1])]))
    return rows


def test_readme_layout_names_only_paths_that_exist_where_it_says():
    rows = layout_rows()
    assert len(rows) >= 10
    for paths, described in rows:
        for path in [*paths, *described]:
            assert path.exists(), f"README's layout table names {path.relative_to(REPO)}, which does not exist"


def tracked_package_parts() -> list[Path]:
    """The package's top-level modules and subpackages that git tracks (work in progress that
    is not committed yet is not held against the README)."""
    try:
        out = subprocess.run(["git", "ls-files", "helixdiag"], cwd=REPO, capture_output=True, text=True,
                             timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout")
    parts = set()
    for line in out.splitlines():
        first, _, rest = line.removeprefix("helixdiag/").partition("/")
        package = rest == "__init__.py"
        module = not rest and first.endswith(".py") and first not in ("__init__.py", "__main__.py")
        if package or module:
            parts.add(REPO / "helixdiag" / first)
    return sorted(parts)


def test_readme_layout_covers_the_package():
    named = {path for paths, described in layout_rows() for path in [*paths, *described]}
    parts = tracked_package_parts()
    assert len(parts) >= 20
    missing = sorted(p.name for p in parts if p not in named)
    assert not missing, f"README's layout table does not mention: {missing}"


COMMANDS = ("helixdiag", "socat", "gst-launch-1.0", "gst-inspect-1.0", "lsof", "nc", "rm", "ls", "pw-cli",
            "pw-dump", "docker", "kill", "printf", "python3", "sudo", "otool", "strings", "pipewiresrc",
            "vsockenc")
PLACEHOLDER = re.compile(r"…|<[A-Za-z][^>]*>")


def example_commands(text: str) -> list[str]:
    """Command lines in fenced code blocks (usage synopses with `[--option]` left out)."""
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.strip()
            if line.split(" ", 1)[0] in COMMANDS and "[-" not in line:
                lines.append(line)
    return lines


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_example_commands_run_as_written(path):
    """No `…` or `<placeholder>` left for the reader to fill in: they cannot be pasted."""
    bad = [line[:120] for line in example_commands(path.read_text(encoding="utf-8"))
           if PLACEHOLDER.search(line.split(" #", 1)[0])]
    assert not bad, f"{path.relative_to(REPO)}: examples that cannot run as written: {bad}"


def test_lint_examples_are_real_pipelines():
    """Every `helixdiag lint "…"` in the docs (and README's PIPELINE) is a whole pipeline."""
    pipelines = []
    for path in MARKDOWN:
        text = path.read_text(encoding="utf-8")
        pipelines += re.findall(r'helixdiag lint (?:--\S+ \S+ )*"([^"$]+)"', text)
        pipelines += re.findall(r'^PIPELINE="([^"]+)"', text, flags=re.M)
    assert len(pipelines) >= 8
    for pipeline in pipelines:
        result = lint(pipeline)  # a syntax error raises
        assert result.vsockenc, f"not a vsockenc pipeline: {pipeline}"
        assert result.parsed.startswith("pipewiresrc ") and "appsink" in result.parsed, pipeline
