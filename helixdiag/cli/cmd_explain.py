"""`helixdiag explain FAILURE_ID`: the troubleshooting page for one failure id.

Like `rustc --explain`: the page is rendered as markdown on a terminal and written as
raw markdown otherwise (pipes, files, `less`). `--list` shows every id with its layer,
severity and title. The page is what the user asked for, so `-q` does not hide it.
"""

from __future__ import annotations

import json

import click
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from helixdiag import failures


@click.command("explain")
@click.argument("failure_id", required=False, metavar="FAILURE_ID")
@click.option("--list", "list_all", is_flag=True, help="List every failure id instead.")
@click.option("--json", "as_json", is_flag=True, help="Print the catalog entry (or the list) as JSON.")
@click.pass_obj
def command(app, failure_id: str | None, list_all: bool, as_json: bool) -> None:
    """Explain a failure id: what it means, how it is detected and how to fix it.

    \b
    Examples:
      helixdiag explain socket-stale
      helixdiag explain --list
    """
    if list_all:
        _print_list(app, as_json)
        return
    if not failure_id:
        raise click.UsageError("give a FAILURE_ID, or --list to see them all")
    try:
        entry = failures.get(failure_id)
    except failures.UnknownFailureId as exc:  # exit 2, one line: "did you mean …?"
        raise failures.UnknownFailureId(failure_id, suggest(failure_id, exc.suggestions)) from None
    if as_json:
        app.terminal.write_machine(json.dumps(_as_dict(entry), indent=2))
        return
    text = failures.page_text(entry.id)
    console = app.terminal.human
    if app.terminal.is_tty:
        console.print(Markdown(text))
    else:
        console.file.write(text if text.endswith("\n") else text + "\n")
        console.file.flush()


def suggest(query: str, close: list[str], limit: int = 4) -> list[str]:
    """Ids that contain what was typed (`stale` → socket-stale; `stale socket` too: every
    word), whole words and shorter ids first, then difflib's close matches."""
    words = [w for w in query.strip().lower().replace("_", "-").replace(" ", "-").split("-") if w]
    if not words:
        return close[:limit]

    def rank(fid: str) -> tuple[int, int]:
        parts = fid.split("-")
        return (0 if all(w in parts for w in words) else 1, len(fid))

    found = sorted((fid for fid in failures.all_ids() if all(w in fid for w in words)), key=rank)
    return list(dict.fromkeys([*found, *close]))[:limit]


def _as_dict(entry: failures.Failure) -> dict[str, str]:
    return {
        "id": entry.id,
        "layer": entry.layer,
        "severity": str(entry.severity),
        "title": entry.title,
        "explanation": entry.explanation,
        "remedy": entry.remedy,
        "page": entry.page,
    }


def _print_list(app, as_json: bool) -> None:
    entries = [failures.CATALOG[fid] for fid in failures.all_ids()]
    if as_json:
        app.terminal.write_machine(json.dumps([_as_dict(e) for e in entries], indent=2))
        return
    console = app.terminal.human
    if not app.terminal.is_tty:
        # Plain aligned columns: easy to grep, never wrapped or truncated.
        width = max(len(e.id) for e in entries)
        lwidth = max(len(e.layer) for e in entries)
        lines = [f"{e.id:<{width}}  {e.layer:<{lwidth}}  {e.severity!s:<4}  {e.title}" for e in entries]
        console.file.write("\n".join(lines) + "\n")
        console.file.flush()
        return
    table = Table(title="helixdiag failure ids (guest → host)", title_justify="left")
    table.add_column("id", style="id", no_wrap=True, overflow="fold")
    table.add_column("layer", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("title")
    for e in entries:
        table.add_row(e.id, e.layer, Text(str(e.severity), style=str(e.severity)), Text(e.title))
    console.print(table)
    console.print("[muted]`helixdiag explain FAILURE_ID` shows one page.[/muted]")
