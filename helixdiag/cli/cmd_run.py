"""`helixdiag run`: probe the layers, conclude the root cause, report."""

from __future__ import annotations

from collections.abc import Callable

import click

from helixdiag import remote, runner
from helixdiag.cli.options import SIZE, FloatRange, IntRange, output_file, write_file, write_json
from helixdiag.config import OPTIONS, RunConfig, resolve
from helixdiag.errors import ConfigError
from helixdiag.report import bundle, html, junit, merge, text


def run_options(func):
    """`run`'s options, built from their one declaration (config.RunConfig), shared by `run`,
    `fix` and `watch`; each can also come from HELIXDIAG_<NAME> or a profile."""
    options = [_click_option(name, f.metadata) for name, f in OPTIONS.items()]
    options.insert(-4, click.option("--profile", metavar="NAME|FILE",
                                    help="A profile from checks/ (e.g. macos-host, ci-smoke) or a TOML file."))
    for option in reversed(options):
        func = option(func)
    return func


def _click_option(name: str, meta: dict) -> Callable:
    kind, flag = meta["kind"], f"--{name.replace('_', '-')}"
    if meta["choices"]:
        return click.option(flag, type=click.Choice(meta["choices"]), help=meta["help"])
    if kind is int:
        return click.option(flag, type=IntRange(meta["low"], meta["high"]), help=meta["help"])
    if kind is float:
        return click.option(flag, type=FloatRange(meta["low"], meta["high"]), help=meta["help"])
    return click.option(flag, type=SIZE if kind == "size" else None, metavar=meta["metavar"], help=meta["help"])


CONFIG_KEYS = (*OPTIONS, "profile")


@click.command("run")
@click.argument("names", nargs=-1, metavar="[PROBE_OR_LAYER]...")
@click.option("--all", "run_all", is_flag=True, help="Every probe that applies (the default when nothing is named).")
@run_options
@click.option("--json", "json_dest", metavar="PATH|-", callback=output_file,
              help="Write the JSON report ('-' = stdout, nothing else there).")
@click.option("--junit", "junit_dest", metavar="PATH", callback=output_file,
              help="Write JUnit XML (one testcase per probe).")
@click.option("--html", "html_dest", metavar="PATH", callback=output_file,
              help="Write a self-contained HTML report for the ticket.")
@click.option("--bundle", "bundle_dest", metavar="PATH", callback=output_file,
              help="Write a .tar.gz with the JSON/HTML reports and the logs' tails.")
@click.option("--redact-paths", is_flag=True, help="Also replace the home directory and user name in every output.")
@click.option("--guest", "guest_prefix", metavar="PREFIX",
              help="Run the guest side through this command prefix (e.g. 'ssh ubuntu@helix-vm', "
                   "'docker exec -i NAME') and merge it into one report.")
@click.option("--guest-timeout", type=FloatRange(1, 3600), default=90.0, show_default=True,
              help="Bound on the remote guest run, seconds.")
@click.pass_obj
def command(app, names, run_all, json_dest, junit_dest, html_dest, bundle_dest, redact_paths,
            guest_prefix, guest_timeout, **flags) -> None:
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
    if guest_prefix:
        report = execute_with_guest(app, flags, list(names), run_all, guest_prefix, guest_timeout)
    else:
        report = execute(app, flags, list(names), run_all)
    report.redact_paths = redact_paths
    if bundle_dest:
        try:
            bundle.write(report, bundle_dest)
        except OSError as exc:
            raise ConfigError(f"cannot write {bundle_dest}: {exc.strerror or exc}") from None
    write_reports(app, report, json_dest=json_dest, junit_dest=junit_dest, html_dest=html_dest)
    if report.exit_code:
        raise click.exceptions.Exit(report.exit_code)


def execute(app, flags: dict, names: list[str], run_all: bool):
    cfg = resolve({k: flags.get(k) for k in CONFIG_KEYS})
    probes = runner.select(names, run_all)
    work = runner.Runner(cfg, probes, explicit=set(names))
    if app.terminal.is_tty and not app.terminal.quiet:
        with app.terminal.human.status("probing the path…", spinner="dots"):
            return work.run()
    return work.run()


def execute_with_guest(app, flags: dict, names: list[str], run_all: bool, prefix: str, timeout: float):
    """The guest probes remotely, the host probes here, one merged report."""
    args = RunConfig().guest_arguments(flags) + names
    if app.terminal.is_tty and not app.terminal.quiet:
        with app.terminal.human.status(f"running the guest side via {prefix}…"):
            guest = remote.run_guest(prefix, args, run_timeout=timeout)
    else:
        guest = remote.run_guest(prefix, args, run_timeout=timeout)
    host = execute(app, {**flags, "side": "host"}, names, run_all)
    return merge.merge(host, guest)


def write_reports(app, report, *, json_dest=None, junit_dest=None, html_dest=None,
                  verdict: bool = True) -> None:
    """The files asked for, then the text view (every command that reports uses this).
    `verdict=False` when the caller prints its own final line (selftest)."""
    if json_dest:
        write_json(app, json_dest, report.to_dict())
    if junit_dest:
        write_file(junit_dest, junit.render(report))
    if html_dest:
        write_file(html_dest, html.render(report))
    text.render(app.terminal, report, verdict=verdict)
