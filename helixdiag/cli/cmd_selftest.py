"""`helixdiag selftest`: the bundled local stack, diagnosed (and broken on purpose)."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from helixdiag import selftest
from helixdiag.cli.cmd_run import write_reports
from helixdiag.cli.options import output_file, write_file, write_json
from helixdiag.errors import ConfigError
from helixdiag.report import html
from helixdiag.report.model import Report
from helixdiag.selftest.pipewire import PipeWireUnavailable


@click.command("selftest")
@click.option("--break", "break_id", metavar="ID|all",
              help=f"Break one layer on purpose and check the diagnosis names it: all, {', '.join(selftest.scenario_names())}.")
@click.option("--json", "json_dest", metavar="PATH|-", callback=output_file,
              help="Write the JSON report (the last one with --break all).")
@click.option("--junit", "junit_dest", metavar="PATH", callback=output_file,
              help="Write JUnit XML (one testcase per scenario with --break all).")
@click.option("--html", "html_dest", metavar="PATH", callback=output_file,
              help="Write the HTML report (with --break all: one page, every scenario in it).")
@click.pass_obj
def command(app, break_id, json_dest, junit_dest, html_dest) -> None:
    """Start serve + real socat on loopback in a temporary directory, then diagnose it.

    \b
    Unbroken, every layer that applies must pass (QEMU-only checks are skipped: the
    host is `helixdiag serve`). With --break ID, the diagnosis must name ID as the root
    cause. Everything started is torn down afterwards, also on Ctrl-C or failure.

    \b
    Examples:
      helixdiag selftest
      helixdiag selftest --break socket-stale
      helixdiag selftest --break all --junit selftest.xml --html selftest.html
    """
    if json_dest == "-":
        app.terminal.reserve_stdout()
    if break_id == "all":
        ok = _break_all(app, json_dest, junit_dest, html_dest)
    else:
        ok = _one(app, break_id, json_dest, junit_dest, html_dest)
    if not ok:
        raise click.exceptions.Exit(1)


def verdict(break_id: str | None, report: Report) -> tuple[bool, str]:
    root = report.diagnosis.root_cause
    got = root.failure_id if root else None
    if break_id is None:
        errors = [p.id for p in report.probes if str(p.status) == "error"]
        ok = report.diagnosis.status != "fail" and not errors
        return ok, "healthy" if ok else f"expected a healthy stack, got {got or 'probe errors: ' + ', '.join(errors)}"
    return got == break_id, got or "no root cause"


def _one(app, break_id, json_dest, junit_dest, html_dest=None) -> bool:
    t = app.terminal
    try:
        report, notes = selftest.diagnose(break_id)
    except PipeWireUnavailable as exc:
        raise ConfigError(f"--break {break_id} needs a PipeWire this machine cannot start: {exc}") from None
    t.print("[muted]stack: " + " · ".join(notes) + "[/muted]")
    write_reports(app, report, json_dest=json_dest, junit_dest=junit_dest, html_dest=html_dest,
                  verdict=False)
    ok, got = verdict(break_id, report)
    if break_id:
        mark = "[pass]MATCH[/pass]" if ok else "[fail]MISMATCH[/fail]"
        t.verdict(f"selftest: broke [id]{break_id}[/id], diagnosed [id]{got}[/id] → {mark}")
    else:
        t.verdict(f"selftest: {'[pass]healthy stack diagnosed healthy[/pass]' if ok else '[fail]' + got + '[/fail]'}")
    return ok


def _break_all(app, json_dest, junit_dest, html_dest) -> bool:
    t = app.terminal
    rows = []
    reports: dict[str, Report] = {}
    names = [None, *selftest.scenario_names()]
    last = None
    for i, name in enumerate(names, 1):
        label = name or "(healthy)"
        try:
            if t.is_tty and not t.quiet:
                with t.human.status(f"[{i}/{len(names)}] {label}…"):
                    report, _ = selftest.diagnose(name)
            else:
                report, _ = selftest.diagnose(name)
        except PipeWireUnavailable as exc:
            # "where PipeWire is available": shown, not counted as a mismatch.
            rows.append((label, f"not run: {exc}", None, 0))
            t.print(f"[{i}/{len(names)}] {label}: [skip]not run here[/skip] ({exc})")
            continue
        ok, got = verdict(name, report)
        rows.append((label, got, ok, report.duration_ms))
        t.print(f"[{i}/{len(names)}] {label}: {'[pass]match[/pass]' if ok else '[fail]MISMATCH[/fail]'}")
        reports[label] = last = report
    table = Table(title="selftest --break all", title_justify="left")
    for col in ("broken layer", "diagnosed root cause", "match", "time"):
        table.add_column(col)
    for label, got, ok, ms in rows:
        match = "[skip]n/a[/skip]" if ok is None else "[pass]yes[/pass]" if ok else "[fail]NO[/fail]"
        table.add_row(label, got, match, f"{ms / 1000:.2f} s")
    t.print(table)
    if json_dest and last is not None:
        write_json(app, json_dest, last.to_dict())
    if junit_dest:
        write_file(junit_dest, _scenario_junit(rows))
    if html_dest:
        write_file(html_dest, html.render_scenarios(rows, reports))
    _all_verdict(t, rows)
    return all(ok is not False for _, _, ok, _ in rows)


def _all_verdict(t, rows) -> None:
    """One line for the whole table: how many matched, which did not."""
    ran = [r for r in rows if r[2] is not None]
    wrong = [f"{label} → {got}" for label, got, ok, _ in rows if ok is False]
    not_run = len(rows) - len(ran)
    skipped = f" · {not_run} not run here" if not_run else ""
    if wrong:
        t.verdict(f"selftest --break all: [fail]MISMATCH[/fail] {len(wrong)} of {len(ran)}: "
                  + escape("; ".join(wrong)) + skipped)
    else:
        t.verdict(f"selftest --break all: [pass]every scenario diagnosed as expected[/pass] "
                  f"({len(ran)} of {len(ran)}){skipped}")


def _scenario_junit(rows) -> str:
    import xml.etree.ElementTree as ET

    suite = ET.Element("testsuite", {"name": "helixdiag-selftest", "tests": str(len(rows)),
                                     "failures": str(sum(1 for r in rows if not r[2]))})
    for label, got, ok, ms in rows:
        case = ET.SubElement(suite, "testcase", {"classname": "helixdiag.selftest", "name": label,
                                                 "time": f"{ms / 1000:.3f}"})
        if ok is None:
            ET.SubElement(case, "skipped", {"message": got})
        elif not ok:
            ET.SubElement(case, "failure", {"message": f"broke {label}, diagnosed {got}"})
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
