"""`helixdiag selftest`: the bundled local stack, diagnosed (and broken on purpose)."""

from __future__ import annotations

from functools import partial

import click

from helixdiag import selftest
from helixdiag.cli import progress
from helixdiag.cli.options import output_file
from helixdiag.cli.reporting import finish, write_file, write_report_files
from helixdiag.errors import ConfigError
from helixdiag.report import html, junit, selftest_text
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
        _break_all(app, json_dest, junit_dest, html_dest)
    else:
        _one(app, break_id, json_dest, junit_dest, html_dest)


def verdict(break_id: str | None, report: Report) -> tuple[bool, str]:
    """Did the diagnosis name what was broken (or, unbroken, find the stack healthy)? And
    what it named."""
    root = report.diagnosis.root_cause
    got = root.failure_id if root else None
    if break_id is None:
        errors = [p.id for p in report.probes if str(p.status) == "error"]
        ok = report.diagnosis.status != "fail" and not errors
        return ok, "healthy" if ok else f"expected a healthy stack, got {got or 'probe errors: ' + ', '.join(errors)}"
    return got == break_id, got or "no root cause"


def _one(app, break_id, json_dest, junit_dest, html_dest) -> None:
    t = app.terminal
    try:
        with progress.probing(t, "selftest"):
            report, notes = selftest.diagnose(break_id)
    except PipeWireUnavailable as exc:
        raise ConfigError(f"--break {break_id} needs a PipeWire this machine cannot start: {exc}") from None
    selftest_text.stack(t, notes)
    write_report_files(report, junit_dest=junit_dest, html_dest=html_dest)
    ok, got = verdict(break_id, report)
    finish(app, 0 if ok else 1, json_dest=json_dest, document=report.to_dict,
           show=partial(selftest_text.one, t, report, break_id, ok, got))


def _break_all(app, json_dest, junit_dest, html_dest) -> None:
    t = app.terminal
    rows: list[selftest_text.Row] = []
    reports: dict[str, Report] = {}
    names = [None, *selftest.scenario_names()]
    last = None
    for i, name in enumerate(names, 1):
        label = name or "(healthy)"
        try:
            with progress.probing(t, f"[{i}/{len(names)}] {label}"):
                report, _ = selftest.diagnose(name)
        except PipeWireUnavailable as exc:
            # "where PipeWire is available": shown, not counted as a mismatch.
            rows.append((label, f"not run: {exc}", None, 0))
            selftest_text.scenario(t, i, len(names), label, None, str(exc))
            continue
        ok, got = verdict(name, report)
        rows.append((label, got, ok, report.duration_ms))
        selftest_text.scenario(t, i, len(names), label, ok)
        reports[label] = last = report
    if junit_dest:
        write_file(junit_dest, junit.render_scenarios(rows))
    if html_dest:
        write_file(html_dest, html.render_scenarios(rows, reports))
    finish(app, 0 if all(ok is not False for _, _, ok, _ in rows) else 1, json_dest=json_dest,
           document=last.to_dict if last is not None else None, show=partial(selftest_text.scenarios, t, rows))
