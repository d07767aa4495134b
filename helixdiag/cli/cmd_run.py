"""`helixdiag run`: probe the layers, conclude the root cause, report."""

from __future__ import annotations

import click

from helixdiag import remote, runner
from helixdiag.cli.options import FloatRange, IntRange, output_file, write_file, write_json
from helixdiag.config import CHOICES, resolve
from helixdiag.errors import ConfigError
from helixdiag.report import bundle, html, junit, merge, text


def run_options(func):
    """The options of SPEC.md §3, shared by `run` and `fix` (each also HELIXDIAG_<NAME>)."""
    options = [
        click.option("--side", type=click.Choice(CHOICES["side"]), help="auto = guest inside a QEMU/UTM guest, else host; both = everything here (CI)."),
        click.option("--topology", type=click.Choice(CHOICES["topology"]), help="socat = TCP → socat → Unix socket → QEMU; tcp = QEMU listens itself."),
        click.option("--mode", type=click.Choice(CHOICES["mode"]), help="request (vsockenc) or scanout (SUBSCRIBE) for the stream probes."),
        click.option("--host", metavar="ADDR", help="What the guest dials (default 10.0.2.2; 127.0.0.1 with --side both)."),
        click.option("--port", type=IntRange(1, 65535), help="The port the guest dials (default: discovered)."),
        click.option("--socket", metavar="PATH", help="The Unix socket (default: socat's target, QEMU's cwd, UTM's Group Container)."),
        click.option("--qemu-log", metavar="PATH", help="QEMU's helix log (default on macOS: UTM's helix-debug.log)."),
        click.option("--gst-log", metavar="PATH", help="vsockenc's GST_DEBUG log."),
        click.option("--pipeline", metavar="STRING", help="The guest's GStreamer pipeline, for the lint."),
        click.option("--pipewire-node", metavar="ID|NAME", help="The PipeWire video source node."),
        click.option("--profile", metavar="NAME|FILE", help="A profile from checks/ (e.g. macos-host, ci-smoke) or a TOML file."),
        click.option("--timeout", type=FloatRange(0.05, 600), help="Seconds per network wait (default 2)."),
        click.option("--frames", type=IntRange(1, 10_000), help="Frames in the stream exchange (default 10)."),
        click.option("--size", metavar="WxH", help="Picture size of the stream exchange (default 640x360)."),
        click.option("--deadline", type=FloatRange(1, 3600), help="Bound on the whole run, seconds (default 30)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


CONFIG_KEYS = ("side", "topology", "mode", "host", "port", "socket", "qemu_log", "gst_log", "pipeline",
               "pipewire_node", "profile", "timeout", "frames", "size", "deadline")


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


GUEST_FORWARDED = ("host", "port", "timeout", "mode", "pipeline", "gst_log", "pipewire_node", "frames", "size")


def execute_with_guest(app, flags: dict, names: list[str], run_all: bool, prefix: str, timeout: float):
    """The guest probes remotely, the host probes here, one merged report."""
    args: list[str] = []
    for key in GUEST_FORWARDED:
        value = flags.get(key)
        if value is not None:
            args += [f"--{key.replace('_', '-')}", str(value)]
    args += names
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
