"""`helixdiag fix`: the repair plan for what `run` finds; `--apply` carries it out."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from helixdiag import fix, runner
from helixdiag.cli.cmd_run import CONFIG_KEYS, run_options
from helixdiag.cli.words import count
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
        _undo(t)
        return
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
        _dry_run_note(t, actions, stand_in)
        raise click.exceptions.Exit(report.exit_code)
    if not yes and not sys.stdin.isatty():
        raise UsageError("fix --apply asks before each action; without a terminal pass --yes")
    results = []
    for action in actions:
        if not _runs(action, stand_in):
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
        t.print(f"[{style}]{'done' if result.done else 'not done'}[/{style}] {escape(result.detail)}", soft_wrap=True)
        for probe_id, status in result.recheck.items():
            before = next((str(p.status) for p in report.probes if p.id == probe_id), "—")
            expected = action.expected(probe_id, status)
            if expected:  # the action's known consequence, not a regression: no failure colour
                t.print(f"    {probe_id}: {before} → {status} [muted]({escape(expected)})[/muted]")
            else:
                t.print(f"    {probe_id}: {before} → [{status}]{status}[/{status}]")
    if not any(r.done for r in results):
        t.print("nothing was changed: the diagnosis above stands")
        raise click.exceptions.Exit(report.exit_code)
    final = runner.Runner(cfg, runner.select([], True)).run()
    t.print()
    t.print("[bold]after the repairs:[/bold]")
    text.render(t, final)
    for note in sorted({n for r in results if r.done for p in final.probes
                        if (n := r.action.expected(p.id, str(p.status)))}):
        t.print(f"[muted]{escape(note)}[/muted]")
    if final.exit_code:
        raise click.exceptions.Exit(final.exit_code)


def _runs(action: fix.Action, stand_in: bool) -> bool:
    """Carried out by --apply (opt-in actions only with --stand-in)."""
    return action.automatic and (stand_in or not action.opt_in)


def _dry_run_note(t, actions: list[fix.Action], stand_in: bool) -> None:
    n = sum(1 for a in actions if _runs(a, stand_in))
    opt_in = any(a.automatic and not _runs(a, stand_in) for a in actions)
    apply = "helixdiag fix --apply" + (" --stand-in" if stand_in else "")
    if n:
        t.print(f"[muted]dry run: `{apply}` carries out {count(n, 'automatic action')}; "
                "the manual steps are yours[/muted]")
    else:
        t.print("[muted]nothing can be done automatically here: carry out the manual steps above by hand"
                + ("; `helixdiag fix --apply --stand-in` would start a stand-in host" if opt_in else "")
                + "[/muted]")


def _undo(t) -> None:
    results = fix.undo()
    if not results:
        t.print(f"nothing to undo: no process started by helixdiag is recorded in {escape(str(fix.state_file()))}",
                soft_wrap=True)
        return
    for ok, detail in results:
        style = "pass" if ok else "fail"
        t.print(f"[{style}]{'ok' if ok else 'failed'}[/{style}] {escape(detail)}", soft_wrap=True)
    if not all(ok for ok, _ in results):
        raise click.exceptions.Exit(1)


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
        if not a.automatic:
            label = a.risk  # "manual"
        else:
            label = f"{a.risk}, " + ("auto" if _runs(a, stand_in) else "opt-in: --stand-in")
        t.print(f"{i:2}. [id]{a.failure_id}[/id] {escape(a.title)} [muted]({label})[/muted]", soft_wrap=True)
        prefix = "$ " if a.automatic else ""
        t.print(f"    [muted]{prefix}{escape(a.command)}[/muted]", soft_wrap=True)
