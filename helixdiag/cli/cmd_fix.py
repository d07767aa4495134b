"""`helixdiag fix`: the repair plan for what `run` finds; `--apply` carries it out."""

from __future__ import annotations

import sys
from functools import partial

import click

from helixdiag import fix, runner
from helixdiag.cli import fix_text, progress
from helixdiag.cli.options import CONFIG_KEYS, run_options
from helixdiag.cli.reporting import finish
from helixdiag.config import resolve
from helixdiag.errors import UsageError
from helixdiag.probes import REGISTRY, load
from helixdiag.report import text


@click.command("fix")
@run_options
@click.option("--apply", "do_apply", is_flag=True, help="Carry out the automatic actions (default: only show the plan).")
@click.option("--yes", is_flag=True, help="Do not ask before each action (for scripts).")
@click.option("--stand-in", is_flag=True, help="Also start `helixdiag serve` in place of a broken QEMU.")
@click.option("--undo", is_flag=True,
              help="Stop the processes earlier `fix --apply` runs started (socat, the stand-in), nothing else.")
@click.pass_obj
def command(app, do_apply, yes, stand_in, undo, **flags) -> None:
    """Show how to repair what `run` finds; with --apply, repair and re-check.

    \b
    Automatic (with --apply): remove a stale socket (only a socket that refuses
    connections and that no process holds), start socat when it is missing, replace a
    socat helixdiag started that points at the wrong socket, and (--stand-in) start
    `helixdiag serve` in place of QEMU. Everything else is printed as manual steps with
    this machine's values. A regular file, a directory, a live socket or a process
    helixdiag did not start is never touched. --undo stops what those runs started.
    """
    t = app.terminal
    if undo:
        if do_apply or stand_in:
            raise UsageError("--undo stops what earlier repairs started; use it without --apply/--stand-in")
        results = fix.undo()
        finish(app, 0 if all(ok for ok, _ in results) else 1, show=partial(fix_text.undone, t, results))
        return
    cfg = resolve({k: flags.get(k) for k in CONFIG_KEYS})
    with progress.probing(t):
        work = runner.Runner(cfg, runner.select([], True))
        report = work.run()
    text.render(t, report)
    actions = fix.plan(report, work.ctx)
    if not actions:
        fix_text.nothing_to_fix(t)
        return
    carried_out = [_runs(a, stand_in) for a in actions]
    fix_text.plan(t, actions, carried_out)
    if not do_apply:
        opt_in = any(a.automatic and not runs for a, runs in zip(actions, carried_out, strict=True))
        finish(app, report.exit_code, show=partial(fix_text.dry_run, t, sum(carried_out), opt_in, stand_in))
        return
    if not yes and not sys.stdin.isatty():
        raise UsageError("fix --apply asks before each action; without a terminal pass --yes")
    before = {p.id: str(p.status) for p in report.probes}
    results = []
    for action in (a for a, runs in zip(actions, carried_out, strict=True) if runs):
        if not yes and not click.confirm(f"{action.title}? ({action.risk})", default=False):
            results.append(fix.ActionResult(action, False, "skipped at the prompt"))
            continue
        try:
            result = fix.ActionResult(action, True, action.execute())  # type: ignore[misc]
        except fix.Refused as exc:
            result = fix.ActionResult(action, False, f"refused: {exc}")
        result.recheck = _recheck(t, cfg, action.recheck)
        results.append(result)
        fix_text.action_result(t, result, before)
    if not any(r.done for r in results):
        finish(app, report.exit_code, show=partial(fix_text.nothing_changed, t))
        return
    with progress.probing(t, "after the repairs"):
        final = runner.Runner(cfg, runner.select([], True)).run()
    notes = sorted({n for r in results if r.done for p in final.probes
                    if (n := r.action.expected(p.id, str(p.status)))})
    finish(app, final.exit_code, show=partial(fix_text.after_repairs, t, final, notes))


def _runs(action: fix.Action, stand_in: bool) -> bool:
    """Carried out by --apply (opt-in actions only with --stand-in)."""
    return action.automatic and (stand_in or not action.opt_in)


def _recheck(t, cfg, probe_ids: tuple[str, ...]) -> dict[str, str]:
    """The probes an action affects, run again: probe id → status."""
    load()
    specs = [REGISTRY[p] for p in probe_ids if p in REGISTRY]
    if not specs:
        return {}
    with progress.probing(t, "re-checking"):
        report = runner.Runner(cfg, specs).run()
    return {p.id: str(p.status) for p in report.probes}
