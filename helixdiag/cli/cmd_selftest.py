"""`helixdiag selftest`: the bundled local stack, diagnosed (and broken on purpose)."""

from __future__ import annotations

from functools import partial

import click

from helixdiag import selftest
from helixdiag.cli import progress
from helixdiag.cli.options import report_files
from helixdiag.cli.reporting import finish, write_file, write_report_files
from helixdiag.errors import ConfigError
from helixdiag.report import html, junit, selftest_text
from helixdiag.report.model import Report
from helixdiag.selftest.pipewire import PipeWireUnavailable


@click.command("selftest")
@click.option("--stack", "stack", metavar="NAME|all",
              help=f"Which stack: {', '.join(selftest.STACKS)} (default: all of them, modern first; "
                   "with --break, the stack that has it).")
@click.option("--break", "break_id", metavar="ID|all",
              help=f"Break one thing on purpose and check the diagnosis names it: all, {', '.join(selftest.scenario_names())}.")
@report_files(json="Write the JSON report (the last one with --break all).",
              junit="Write JUnit XML (one testcase per scenario with --break all).",
              html="Write the HTML report (with --break all: one page, every scenario in it).")
@click.pass_obj
def command(app, stack, break_id, json_dest, junit_dest, html_dest) -> None:
    """Start a bundled stack on loopback in a temporary directory, then diagnose it.

    \b
    Stacks: tcp-scanout (today's path: an H4 host, the drm-manager stand-in, a desktop
    holding a lease, a subscriber), tcp-request (an H2 host asked like vsockenc),
    socat-request (socat in front of serve on a Unix socket). Unbroken, every layer that
    applies must pass (QEMU-only checks are skipped where the host is `helixdiag serve`).
    With --break ID, the diagnosis must name the failure id that break stands for.
    Everything started is torn down afterwards, also on Ctrl-C or failure.

    \b
    Examples:
      helixdiag selftest
      helixdiag selftest --stack tcp-scanout --break no-frames
      helixdiag selftest --break socket-stale
      helixdiag selftest --break all --junit selftest.xml --html selftest.html
    """
    if json_dest == "-":
        app.terminal.reserve_stdout()
    stack = None if stack == "all" else stack
    if break_id == "all":
        _break_all(app, stack, json_dest, junit_dest, html_dest)
    elif break_id is None and stack is None:
        _every_stack(app, json_dest, junit_dest, html_dest)
    else:
        _one(app, break_id, stack, json_dest, junit_dest, html_dest)


def _one(app, break_id, stack, json_dest, junit_dest, html_dest) -> None:
    t = app.terminal
    spec, _ = selftest.find(break_id, stack)
    try:
        with progress.probing(t, f"selftest {spec.name}"):
            report, notes = selftest.diagnose(break_id, spec.name)
    except PipeWireUnavailable as exc:
        raise ConfigError(f"--break {break_id} needs a PipeWire this machine cannot start: {exc}") from None
    selftest_text.stack(t, [spec.name, *notes])
    write_report_files(report, junit_dest=junit_dest, html_dest=html_dest)
    ok, got = selftest.verdict(break_id, report, spec.name)
    finish(app, 0 if ok else 1, json_dest=json_dest, document=report.to_dict,
           show=partial(selftest_text.one, t, report, break_id, ok, got))


def _every_stack(app, json_dest, junit_dest, html_dest) -> None:
    """Each stack healthy, modern first: its parts, its report and its verdict line, each as
    soon as it is diagnosed (the last one ends the command)."""
    t = app.terminal
    names = list(selftest.STACKS)
    oks = []
    for name in names:
        with progress.probing(t, f"selftest {name}"):
            report, notes = selftest.diagnose(None, name)
        ok, got = selftest.verdict(None, report, name)
        oks.append(ok)
        selftest_text.stack(t, [name, *notes])
        if name != names[-1]:
            selftest_text.one(t, report, None, ok, got)
            t.print("")
    write_report_files(report, junit_dest=junit_dest, html_dest=html_dest)
    finish(app, 0 if all(oks) else 1, json_dest=json_dest, document=report.to_dict,
           show=partial(selftest_text.one, t, report, None, ok, got))


def _labels(stack: str | None) -> list[tuple[str, str, str | None]]:
    """(label, stack, break) for --break all: every stack's healthy run and breaks, the first
    setup first (socat-request's labels are its failure ids alone)."""
    order = [stack] if stack else [*reversed(selftest.STACKS)]
    out = []
    for name in order:
        prefix = "" if name == selftest.DEFAULT_STACK else f"{name} "
        out.append((f"{prefix}(healthy)", name, None))
        out += [(f"{prefix}{b}", name, b) for b in selftest.STACKS[name].scenarios]
    return out


def _break_all(app, stack, json_dest, junit_dest, html_dest) -> None:
    t = app.terminal
    rows: list[selftest_text.Row] = []
    reports: dict[str, Report] = {}
    names = _labels(stack)
    last = None
    for i, (label, spec, name) in enumerate(names, 1):
        try:
            with progress.probing(t, f"[{i}/{len(names)}] {label}"):
                report, _ = selftest.diagnose(name, spec)
        except PipeWireUnavailable as exc:
            # "where PipeWire is available": shown, not counted as a mismatch.
            rows.append((label, f"not run: {exc}", None, 0))
            selftest_text.scenario(t, i, len(names), label, None, str(exc))
            continue
        ok, got = selftest.verdict(name, report, spec)
        rows.append((label, got, ok, report.duration_ms))
        selftest_text.scenario(t, i, len(names), label, ok)
        reports[label] = last = report
    if junit_dest:
        write_file(junit_dest, junit.render_scenarios(rows))
    if html_dest:
        write_file(html_dest, html.render_scenarios(rows, reports))
    finish(app, 0 if all(ok is not False for _, _, ok, _ in rows) else 1, json_dest=json_dest,
           document=last.to_dict if last is not None else None, show=partial(selftest_text.scenarios, t, rows))
