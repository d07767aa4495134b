"""`helixdiag fix`: the repair plan for what `run` finds; `--apply` carries it out."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from helixdiag import fix, runner
from helixdiag.cli.cmd_run import CONFIG_KEYS, run_options
from helixdiag.config import resolve
from helixdiag.errors import UsageError
from helixdiag.probes import REGISTRY, load
from helixdiag.report import text


@click.command("fix")
@run_options
@click.option("--apply", "do_apply", is_flag=True, help="Carry out the automatic actions (default: only show the plan).")
@click.option("--yes", is_flag=True, help="Do not ask before each action (for scripts).")
@click.option("--stand-in", is_flag=True, help="Also start `helixdiag serve` in place of a broken QEMU.")
@click.pass_obj
def command(app, do_apply, yes, stand_in, **flags) -> None:
    """Show how to repair what `run` finds; with --apply, repair and re-check.

    \b
    Automatic (with --apply): remove a stale socket (only a socket that refuses
    connections and that no process holds), start socat when it is missing, replace a
    socat helixdiag started that points at the wrong socket, and (--stand-in) start
    `helixdiag serve` in place of QEMU. Everything else is printed as manual steps with
    this machine's values. A regular file, a directory, a live socket or a process
    helixdiag did not start is never touched.
    """
    t = app.terminal
    cfg = resolve({k: flags.get(k) for k in CONFIG_KEYS})
    work = runner.Runner(cfg, runner.select([], True))
    report = work.run()
    text.render(t, report)
    actions = fix.plan(report, work.ctx)
    if not actions:
        t.print("[pass]nothing to fix[/pass]")
        return
    _show_plan(t, actions, stand_in)
    if not do_apply:
        n = sum(1 for a in actions if a.automatic and (stand_in or not a.opt_in))
        t.print(f"[muted]dry run: `helixdiag fix --apply` carries out the {n} automatic action(s)[/muted]")
        raise click.exceptions.Exit(1 if report.exit_code else 0)
    if not yes and not sys.stdin.isatty():
        raise UsageError("fix --apply asks before each action; without a terminal pass --yes")
    results = []
    for action in actions:
        if not action.automatic or (action.opt_in and not stand_in):
            continue
        if not yes and not click.confirm(f"{action.title}? ({action.risk})", default=False):
            results.append(fix.ActionResult(action, False, "skipped at the prompt"))
            continue
        try:
            detail = action.execute()  # type: ignore[misc]
            result = fix.ActionResult(action, True, detail)
        except fix.Refused as exc:
            result = fix.ActionResult(action, False, f"refused: {exc}")
        result.recheck = _recheck(cfg, action.recheck)
        results.append(result)
        style = "pass" if result.done else "warn"
        t.print(f"[{style}]{'done' if result.done else 'not done'}[/{style}] {escape(result.detail)}")
        for probe_id, status in result.recheck.items():
            before = next((str(p.status) for p in report.probes if p.id == probe_id), "—")
            t.print(f"    {probe_id}: {before} → [{status}]{status}[/{status}]")
    final = runner.Runner(cfg, runner.select([], True)).run()
    t.print()
    t.print("[bold]after the repairs:[/bold]")
    text.render(t, final)
    if final.exit_code:
        raise click.exceptions.Exit(final.exit_code)


def _recheck(cfg, probe_ids: tuple[str, ...]) -> dict[str, str]:
    load()
    specs = [REGISTRY[p] for p in probe_ids if p in REGISTRY]
    if not specs:
        return {}
    report = runner.Runner(cfg, specs).run()
    return {p.id: str(p.status) for p in report.probes}


def _show_plan(t, actions: list[fix.Action], stand_in: bool) -> None:
    t.print("[bold]repair plan[/bold]")
    for i, a in enumerate(actions, 1):
        if a.automatic and (stand_in or not a.opt_in):
            kind = "auto"
        else:
            kind = "opt-in: --stand-in" if a.opt_in else "manual"
        t.print(f"{i:2}. [id]{a.failure_id}[/id] {escape(a.title)} [muted]({a.risk}, {kind})[/muted]", soft_wrap=True)
        prefix = "$ " if a.automatic else ""
        t.print(f"    [muted]{prefix}{escape(a.command)}[/muted]", soft_wrap=True)
