"""`helixdiag run`: probe the layers, conclude the root cause, report."""

from __future__ import annotations

from functools import partial

import click

from helixdiag import runner
from helixdiag.agent import places as guest_places
from helixdiag.agent.run import run_place
from helixdiag.cli import progress
from helixdiag.cli.options import CONFIG_KEYS, FloatRange, output_file, report_files, run_options
from helixdiag.cli.reporting import finish, write_report_files
from helixdiag.config import RunConfig, resolve
from helixdiag.report import merge, text


@click.command("run")
@click.argument("names", nargs=-1, metavar="[PROBE_OR_LAYER]...")
@click.option("--all", "run_all", is_flag=True, help="Every probe that applies (the default when nothing is named).")
@run_options
@report_files(json="Write the JSON report ('-' = stdout, nothing else there).",
              junit="Write JUnit XML (one testcase per probe).",
              html="Write a self-contained HTML report for the ticket.")
@click.option("--bundle", "bundle_dest", metavar="PATH", callback=output_file,
              help="Write a .tar.gz with the JSON/HTML reports and the logs' tails.")
@click.option("--redact-paths", is_flag=True, help="Also replace the home directory and user name in every output.")
@click.option("--guest", "guest_prefixes", metavar="[NAME=]PREFIX|auto", multiple=True,
              help="Run the guest side through this command prefix (e.g. 'ssh ubuntu@helix-vm', "
                   "'docker exec -i NAME') and merge it into one report. Name places to give several "
                   "(vm='ssh …' desktop='ssh … docker exec -i …'); auto = the VM over QEMU's ssh forward.")
@click.option("--guest-timeout", type=FloatRange(1, 3600), default=90.0, show_default=True,
              help="Bound on each place's guest run (sending, connecting, running, reading back), seconds.")
@click.pass_obj
def command(app, names, run_all, json_dest, junit_dest, html_dest, bundle_dest, redact_paths,
            guest_prefixes, guest_timeout, **flags) -> None:
    """Probe every hop of the video path and name the root cause.

    \b
    Examples:
      helixdiag run --all                         everything that applies on this machine
      helixdiag run unix-socket qemu              just those layers
      helixdiag run --all --side both --host 127.0.0.1 --port 5900 --json report.json

    Exit codes: 0 no failure (warnings allowed), 1 a failure was found, 2 bad options.
    """
    if json_dest == "-":
        app.terminal.reserve_stdout()
    if guest_prefixes:
        report = execute_with_guest(app, flags, list(names), run_all, list(guest_prefixes), guest_timeout)
    else:
        report = execute(app, flags, list(names), run_all)
    report.redact_paths = redact_paths
    write_report_files(report, junit_dest=junit_dest, html_dest=html_dest, bundle_dest=bundle_dest)
    finish(app, report.exit_code, json_dest=json_dest, document=report.to_dict,
           show=partial(text.render, app.terminal, report))


def execute(app, flags: dict, names: list[str], run_all: bool):
    cfg = resolve({k: flags.get(k) for k in CONFIG_KEYS})
    probes = runner.select(names, run_all)
    with progress.probing(app.terminal):
        return runner.Runner(cfg, probes, explicit=set(names)).run()


def execute_with_guest(app, flags: dict, names: list[str], run_all: bool, prefixes: list[str], timeout: float):
    """The guest probes in each place, the host probes here, one merged report."""
    cfg = resolve({k: flags.get(k) for k in CONFIG_KEYS})
    places = guest_places.parse_places(prefixes, user=cfg.guest_user, connect_timeout=min(timeout, 10.0))
    options = RunConfig().guest_options(flags)
    guests = []
    for place in places:
        with app.terminal.busy(f"running the guest side in {place.name} via {place.prefix}…"):
            guests.append(run_place(place, options, names, mode=cfg.guest_agent, timeout=timeout))
    host = execute(app, {**flags, "side": "host"}, names, run_all)
    return merge.merge(host, guests)
