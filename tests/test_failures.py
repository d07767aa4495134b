"""The failure catalog against SPEC.md §5, its pages, and the `explain` command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from helixdiag import failures
from helixdiag.cli import cli, cmd_explain, main
from helixdiag.errors import EXIT_USAGE, UsageError
from helixdiag.failures import CATALOG, Severity, UnknownFailureId
from helixdiag.layers import LAYER_NAMES

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO.parent / "shared" / "SPEC.md"
PAGES = REPO / "docs" / "failures"
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

# The lead registers the command in helixdiag/cli/__init__.py; be robust until then.
if "explain" not in cli.commands:
    cli.add_command(cmd_explain.command)


def parse_spec_ids(text: str) -> dict[str, tuple[str, bool]]:
    """SPEC.md §5 → {id: (layer, is_warn)} from the '- layer: `id`, `id` (warn), …' lines."""
    match = re.search(r"^## 5\..*?$(.*?)^## ", text, flags=re.S | re.M)
    assert match, "SPEC.md has no §5"
    ids: dict[str, tuple[str, bool]] = {}
    for line in match.group(1).splitlines():
        item = re.match(r"^- ([a-z0-9-]+):\s*(.*)$", line.strip())
        if not item:
            continue
        layer, rest = item.groups()
        for fid, warn in re.findall(r"`([a-z0-9-]+)`(\s*\(warn\))?", rest):
            assert fid not in ids, f"{fid} listed twice in SPEC.md §5"
            ids[fid] = (layer, bool(warn))
    return ids


@pytest.fixture(scope="module")
def spec_ids() -> dict[str, tuple[str, bool]]:
    if not SPEC.is_file():
        pytest.skip(f"{SPEC} is not present (the shared background is outside the repo)")
    ids = parse_spec_ids(SPEC.read_text(encoding="utf-8"))
    assert len(ids) >= 40, f"parsed only {len(ids)} ids from SPEC.md §5: parser broken?"
    return ids


# ── the catalog against the spec ──────────────────────────────────────────────────────


def test_every_spec_id_is_in_the_catalog_with_its_layer(spec_ids):
    missing = sorted(set(spec_ids) - set(CATALOG))
    assert not missing, f"SPEC.md §5 ids missing from CATALOG: {missing}"
    wrong = {
        fid: (CATALOG[fid].layer, layer)
        for fid, (layer, _) in spec_ids.items()
        if CATALOG[fid].layer != layer
    }
    assert not wrong, f"layer differs from SPEC.md §5 (catalog, spec): {wrong}"


def test_warn_exactly_where_spec_says_warn(spec_ids):
    for fid, (_, warn) in spec_ids.items():
        expected = Severity.WARN if warn else Severity.FAIL
        assert CATALOG[fid].severity is expected, f"{fid}: {CATALOG[fid].severity} != {expected}"


def test_spec_parser_sees_the_known_shapes():
    sample = (
        "## 5. Failure ids\n\n"
        "- unix-socket: `socket-missing`, `socket-stale`\n"
        "- socat: `socat-not-running`, `socat-no-fork` (warn)\n\n"
        "## 6. Safety\n- x: `not-an-id`\n"
    )
    assert parse_spec_ids(sample) == {
        "socket-missing": ("unix-socket", False),
        "socket-stale": ("unix-socket", False),
        "socat-not-running": ("socat", False),
        "socat-no-fork": ("socat", True),
    }


# ── catalog shape ─────────────────────────────────────────────────────────────────────


def test_ids_are_kebab_case_unique_and_keyed_by_their_own_id():
    assert len(set(CATALOG)) == len(CATALOG)
    for key, entry in CATALOG.items():
        assert key == entry.id
        assert KEBAB.match(entry.id), entry.id


def test_every_layer_is_valid_and_severity_is_a_severity():
    for entry in CATALOG.values():
        assert entry.layer in LAYER_NAMES, (entry.id, entry.layer)
        assert isinstance(entry.severity, Severity)


def test_every_entry_has_text():
    for entry in CATALOG.values():
        assert entry.title.strip() and "\n" not in entry.title, entry.id
        assert len(entry.explanation) > 40, entry.id
        assert len(entry.remedy) > 20, entry.id


def test_all_ids_is_in_layer_order_and_complete():
    ids = failures.all_ids()
    assert sorted(ids) == sorted(CATALOG)
    ranks = [LAYER_NAMES.index(CATALOG[fid].layer) for fid in ids]
    assert ranks == sorted(ranks)


def test_the_classic_cases_read_right():
    stale = failures.get("socket-stale")
    assert stale.layer == "unix-socket" and stale.severity is Severity.FAIL
    assert "refused" in stale.explanation and "no process" in stale.explanation
    assert "helixdiag fix --apply" in stale.remedy
    assert "restart the VM" in stale.remedy
    mismatch = failures.get("port-mismatch")
    assert mismatch.layer == "guest-tcp"
    assert "port" in mismatch.title.lower()


def test_get_unknown_id_suggests_close_matches():
    with pytest.raises(UnknownFailureId) as info:
        failures.get("sokcet-stale")
    err = info.value
    assert isinstance(err, UsageError) and err.exit_code == EXIT_USAGE
    assert "socket-stale" in err.suggestions
    assert "did you mean" in err.message and "socket-stale" in err.message
    assert "\n" not in err.message


def test_get_unknown_id_without_any_match():
    with pytest.raises(UnknownFailureId) as info:
        failures.get("zzzzzzzz")
    assert info.value.suggestions == []
    assert "explain --list" in info.value.message


def test_get_forgives_case_and_underscores():
    assert failures.get("Socket_Stale").id == "socket-stale"


# ── pages ─────────────────────────────────────────────────────────────────────────────


def page_files() -> list[Path]:
    return sorted(p for p in PAGES.glob("*.md") if p.name != "README.md")


def test_every_catalog_id_has_a_page():
    missing = [fid for fid in CATALOG if not (PAGES / f"{fid}.md").is_file()]
    assert not missing, f"no page for: {missing}"


def test_every_page_is_titled_with_a_catalog_id():
    for page in page_files():
        first = page.read_text(encoding="utf-8").splitlines()[0]
        title = re.match(r"^# (\S+)\s*$", first)
        assert title, f"{page.name}: first line is not '# <id>'"
        assert title.group(1) in CATALOG, f"{page.name}: {title.group(1)} is not a catalog id"
        assert page.stem == title.group(1), f"{page.name} is titled {title.group(1)}"


def test_every_page_has_the_sections_and_its_layer_and_severity():
    sections = [
        "## What you see",
        "## How helixdiag knows",
        "## Why it happens",
        "## How to fix it",
        "## How to confirm",
    ]
    for fid, entry in CATALOG.items():
        text = (PAGES / f"{fid}.md").read_text(encoding="utf-8")
        summary = text.splitlines()[2]
        assert f"`{entry.layer}`" in summary and str(entry.severity) in summary, fid
        positions = [text.find(s) for s in sections]
        assert -1 not in positions, f"{fid}: missing {sections[positions.index(-1)]}"
        assert positions == sorted(positions), f"{fid}: sections out of order"


def test_links_between_pages_resolve():
    for page in [*page_files(), PAGES / "README.md"]:
        for target in re.findall(r"\]\(([^)#]+\.md)\)", page.read_text(encoding="utf-8")):
            assert (PAGES / target).is_file(), f"{page.name} links to missing {target}"


def test_readme_index_matches_the_catalog():
    rows = []
    for line in (PAGES / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        link = re.match(r"^\[`([a-z0-9-]+)`\]\(([a-z0-9-]+)\.md\)$", cells[0]) if cells else None
        if link:
            assert link.group(1) == link.group(2)
            rows.append((link.group(1), cells[1], cells[2], cells[3].replace("\\|", "|")))
    expected = [
        (fid, CATALOG[fid].layer, str(CATALOG[fid].severity), CATALOG[fid].title)
        for fid in failures.all_ids()
    ]
    assert rows == expected


def test_page_text_returns_the_page_and_validates_the_id():
    text = failures.page_text("socket-stale")
    assert text.startswith("# socket-stale\n")
    assert text == (PAGES / "socket-stale.md").read_text(encoding="utf-8")
    with pytest.raises(UnknownFailureId):
        failures.page_text("no-such-failure")


def test_page_text_prefers_the_installed_copy(monkeypatch):
    monkeypatch.setattr(failures, "_installed_page", lambda fid: f"# {fid}\ninstalled\n")
    assert failures.page_text("socket-stale") == "# socket-stale\ninstalled\n"


def test_page_text_without_any_page_falls_back_to_the_catalog(monkeypatch):
    monkeypatch.setattr(failures, "_installed_page", lambda fid: None)
    monkeypatch.setattr(failures, "_source_page", lambda fid: None)
    text = failures.page_text("port-mismatch")
    assert text.startswith("# port-mismatch\n")
    assert CATALOG["port-mismatch"].remedy in text


def test_no_stray_files_in_the_pages_directory():
    stray = [p.name for p in PAGES.iterdir() if p.suffix != ".md"]
    assert not stray, f"unexpected files in docs/failures: {stray}"


# ── the explain command ───────────────────────────────────────────────────────────────


def invoke(*args: str):
    return CliRunner().invoke(cli, ["--no-color", *args])


def test_explain_socket_stale_prints_the_page():
    result = invoke("explain", "socket-stale")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# socket-stale")
    assert "helixdiag fix --apply" in result.output
    assert "restart the VM" in result.output
    assert "rm -f" in result.output


def test_explain_renders_markdown_on_a_terminal(monkeypatch):
    from helixdiag.terminal import Terminal

    monkeypatch.setattr(Terminal, "is_tty", property(lambda self: True))
    result = invoke("explain", "port-mismatch")
    assert result.exit_code == 0, result.output
    assert "How to fix it" in result.output
    assert "## How to fix it" not in result.output  # rendered, not raw


def test_explain_unknown_id_is_a_usage_error_with_a_suggestion():
    result = invoke("explain", "sokcet-stale")
    assert isinstance(result.exception, UnknownFailureId)
    assert "socket-stale" in result.exception.suggestions


def test_explain_unknown_id_through_main_exits_2_on_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--no-color", "explain", "sokcet-stale"])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert "did you mean socket-stale" in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err


def test_explain_list_lists_every_id():
    result = invoke("explain", "--list")
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.output.splitlines() if line.strip()]
    assert listed == failures.all_ids()


def test_explain_list_json():
    result = invoke("explain", "--list", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [d["id"] for d in data] == failures.all_ids()
    assert {d["severity"] for d in data} == {"fail", "warn"}


def test_explain_one_id_as_json():
    result = invoke("explain", "--json", "port-mismatch")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["id"] == "port-mismatch" and data["layer"] == "guest-tcp"
    assert data["remedy"] == CATALOG["port-mismatch"].remedy


def test_explain_without_id_or_list_is_a_click_usage_error():
    result = invoke("explain")
    assert result.exit_code == 2
    assert "FAILURE_ID" in result.output
