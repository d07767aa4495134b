"""The terminal view of the self-test: what was started, the report, and whether the
diagnosis matched what was broken; with `--break all` a line per scenario as it ends, then
the table and one verdict line for them all."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from helixdiag.report import text
from helixdiag.report.model import Report

Row = tuple[str, str, bool | None, int]  # (label, diagnosed, ok — None when not run here, ms)


def stack(terminal, notes: list[str]) -> None:
    terminal.print("[muted]stack: " + " · ".join(notes) + "[/muted]")


def one(terminal, report: Report, break_id: str | None, ok: bool, got: str) -> None:
    """One scenario's report, then its verdict line (instead of the report's)."""
    text.render(terminal, report, verdict=False)
    if break_id:
        mark = "[pass]MATCH[/pass]" if ok else "[fail]MISMATCH[/fail]"
        terminal.verdict(f"selftest: broke [id]{break_id}[/id], diagnosed [id]{escape(got)}[/id] → {mark}")
    else:
        terminal.verdict("selftest: " + ("[pass]healthy stack diagnosed healthy[/pass]" if ok
                                         else f"[fail]{escape(got)}[/fail]"))


def scenario(terminal, i: int, n: int, label: str, ok: bool | None, why_not_run: str = "") -> None:
    """`[3/12] socket-stale: match`, as each scenario of `--break all` ends."""
    if ok is None:
        terminal.print(f"[{i}/{n}] {escape(label)}: [skip]not run here[/skip] ({escape(why_not_run)})")
    else:
        terminal.print(f"[{i}/{n}] {escape(label)}: {'[pass]match[/pass]' if ok else '[fail]MISMATCH[/fail]'}")


def scenarios(terminal, rows: list[Row]) -> None:
    """The table of `--break all`, then one verdict line: how many matched, which did not."""
    table = Table(title="selftest --break all", title_justify="left")
    for col in ("broken layer", "diagnosed root cause", "match", "time"):
        table.add_column(col)
    for label, got, ok, ms in rows:
        match = "[skip]n/a[/skip]" if ok is None else "[pass]yes[/pass]" if ok else "[fail]NO[/fail]"
        table.add_row(escape(label), escape(got), match, f"{ms / 1000:.2f} s")
    terminal.print(table)
    ran = [r for r in rows if r[2] is not None]
    wrong = [f"{label} → {got}" for label, got, ok, _ in rows if ok is False]
    not_run = len(rows) - len(ran)
    skipped = f" · {not_run} not run here" if not_run else ""
    if wrong:
        terminal.verdict(f"selftest --break all: [fail]MISMATCH[/fail] {len(wrong)} of {len(ran)}: "
                         + escape("; ".join(wrong)) + skipped)
    else:
        terminal.verdict(f"selftest --break all: [pass]every scenario diagnosed as expected[/pass] "
                         f"({len(ran)} of {len(ran)}){skipped}")
