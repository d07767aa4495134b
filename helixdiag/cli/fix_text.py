"""The terminal view of `fix`: the repair plan, what each action did with the probes it
re-ran (before → after), and the final word (the one -q keeps); `fix --undo`'s results.
It lives in cli/, not report/, because it reads `fix`'s types and report/ sits below fix."""

from __future__ import annotations

from rich.markup import escape

from helixdiag import fix
from helixdiag.report import text
from helixdiag.report.model import Report
from helixdiag.terminal import count


def plan(t, actions: list[fix.Action], carried_out: list[bool]) -> None:
    """The numbered plan; `carried_out[i]`: would `--apply` (with these flags) run action i."""
    t.print("[bold]repair plan[/bold]")
    for i, (a, runs) in enumerate(zip(actions, carried_out, strict=True), 1):
        if not a.automatic:
            label = a.risk  # "manual"
        else:
            label = f"{a.risk}, " + ("auto" if runs else "opt-in: --stand-in")
        t.print(f"{i:2}. [id]{a.failure_id}[/id] {escape(a.title)} [muted]({label})[/muted]", soft_wrap=True)
        prefix = "$ " if a.automatic else ""
        t.print(f"    [muted]{prefix}{escape(a.command)}[/muted]", soft_wrap=True)


def nothing_to_fix(t) -> None:
    t.verdict("[pass]nothing to fix[/pass]")


def dry_run(t, automatic: int, opt_in: bool, stand_in: bool) -> None:
    """The plan's last line: what `--apply` would carry out (`automatic` actions), or that
    nothing can be done automatically (`opt_in`: a stand-in could be started)."""
    apply = "helixdiag fix --apply" + (" --stand-in" if stand_in else "")
    if automatic:
        t.verdict(f"[muted]dry run: `{apply}` carries out {count(automatic, 'automatic action')}; "
                  "the manual steps are yours[/muted]")
    else:
        t.verdict("[muted]nothing can be done automatically here: carry out the manual steps above by hand"
                  + ("; `helixdiag fix --apply --stand-in` would start a stand-in host" if opt_in else "")
                  + "[/muted]")


def action_result(t, result: fix.ActionResult, before: dict[str, str]) -> None:
    """What one action did, then each probe it re-ran: `probe: before → after`, a known
    consequence of the action in plain colours with why."""
    style = "pass" if result.done else "warn"
    t.print(f"[{style}]{'done' if result.done else 'not done'}[/{style}] {escape(result.detail)}", soft_wrap=True)
    for probe_id, status in result.recheck.items():
        was = before.get(probe_id, "—")
        expected = result.action.expected(probe_id, status)
        if expected:  # the action's known consequence, not a regression: no failure colour
            t.print(f"    {probe_id}: {was} → {status} [muted]({escape(expected)})[/muted]")
        else:
            t.print(f"    {probe_id}: {was} → [{status}]{status}[/{status}]")


def nothing_changed(t) -> None:
    t.verdict("nothing was changed: the diagnosis above stands")


def after_repairs(t, final: Report, notes: list[str]) -> None:
    """The final full run's report, then why some of its failures are expected (an action's
    known consequence)."""
    t.print()
    t.print("[bold]after the repairs:[/bold]")
    text.render(t, final)
    for note in notes:
        t.print(f"[muted]{escape(note)}[/muted]")


def undone(t, results: list[tuple[bool, str]]) -> None:
    """`fix --undo`: one line per process it was asked to stop (each one a result -q keeps)."""
    if not results:
        t.verdict(f"nothing to undo: no process started by helixdiag is recorded in "
                  f"{escape(str(fix.state_file()))}", soft_wrap=True)
        return
    for ok, detail in results:
        style = "pass" if ok else "fail"
        t.verdict(f"[{style}]{'ok' if ok else 'failed'}[/{style}] {escape(detail)}", soft_wrap=True)
