"""The `helixdiag` command: a thin click group over the library.

One module per command; each parses its options, calls the library and hands the result
to the terminal or a renderer. `main()` maps errors to the exit codes of docs/run.md.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass, field

import click

from helixdiag import __version__
from helixdiag.errors import EXIT_CRASH, EXIT_USAGE, HelixdiagError
from helixdiag.terminal import Terminal, finish_output, guard_output

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@dataclass
class App:
    """What every command receives: the terminal and the global options."""

    terminal: Terminal = field(default_factory=Terminal)
    verbose: int = 0
    quiet: bool = False
    no_color: bool = False

    @property
    def verbosity(self) -> int:
        return -1 if self.quiet else self.verbose


def _apply_output_option(ctx: click.Context, param: click.Parameter, value) -> None:
    """-v counts up wherever it is given (`helixdiag -v run -v` is -vv); -q and --no-color
    stick once given. The terminal is reconfigured at once."""
    app = ctx.find_object(App)
    if app is None:
        app = ctx.find_root().obj = App()
    if param.name == "verbose":
        app.verbose += value or 0
    elif value:
        setattr(app, param.name, True)
    app.terminal.configure(verbosity=app.verbosity, no_color=app.no_color)


def output_options() -> list[click.Option]:
    """The global output options, declared once: the group and every subcommand get a copy,
    so they work before and after the subcommand alike."""
    common = {"expose_value": False, "callback": _apply_output_option}
    return [
        click.Option(["-v", "--verbose"], count=True, help="Show more detail (every probe's evidence).", **common),
        click.Option(["-q", "--quiet"], is_flag=True, help="Only errors and the final verdict.", **common),
        click.Option(["--no-color"], is_flag=True, envvar="HELIXDIAG_NO_COLOR",
                     help="Plain output without colour (also: NO_COLOR=1).", **common),
    ]


class HelixGroup(click.Group):
    """A group whose subcommands all accept the global output options."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(output_options())

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params.extend(output_options())
        super().add_command(cmd, name)


@click.group(cls=HelixGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="helixdiag")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Diagnose the Helix video path hop by hop.

    \b
    guest: PipeWire ─► pipewiresrc ─► vsockenc ─► TCP 10.0.2.2:PORT
    host:  [socat ─► Unix socket ─►] QEMU helix-frame-export ─► VideoToolbox H.264

    \b
    Start here:
      helixdiag selftest              the bundled local stack, diagnosed
      helixdiag run --all             probe every layer that applies here
      helixdiag explain socket-stale  what a failure id means and how to fix it

    -v, -q and --no-color work before or after the command.

    Exit codes: 0 no failure, 1 a failure was found, 2 usage/configuration error,
    3 helixdiag itself crashed.
    """
    ctx.ensure_object(App)


_BROKEN: tuple | None = None  # why the commands could not be loaded (a broken install)


def _register_commands() -> None:
    global _BROKEN
    try:
        modules = _command_modules()
    except Exception:  # noqa: BLE001 - main() reports it as a crash (exit 3), never a traceback
        _BROKEN = sys.exc_info()
        return
    for module in modules:
        cli.add_command(module.command)


def _command_modules() -> tuple:
    from helixdiag.cli import (
        cmd_explain,
        cmd_fix,
        cmd_lint,
        cmd_list,
        cmd_logs,
        cmd_run,
        cmd_selftest,
        cmd_send,
        cmd_serve,
        cmd_tap,
        cmd_watch,
    )

    return (cmd_run, cmd_watch, cmd_fix, cmd_selftest, cmd_serve, cmd_send, cmd_lint, cmd_logs,
            cmd_explain, cmd_list, cmd_tap)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: never lets a traceback reach the user by accident, and a
    reader that goes away (`| head -1`) does not change the exit code."""
    original = guard_output()
    _interrupt_once()
    try:
        code = _run(App(), argv)
    finally:
        finish_output(original)
    if threading.current_thread() is threading.main_thread():
        # Python resets its own SIGINT handler at exit: a Ctrl-C while the interpreter
        # shuts down would kill it with a signal instead of this exit code.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


def _run(app: App, argv: list[str] | None) -> int:
    if _BROKEN is not None:
        return _report_crash(app.terminal, _BROKEN)
    try:
        rv = cli.main(args=argv, prog_name="helixdiag", standalone_mode=False, obj=app)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help(), err=True)
        return exc.exit_code
    except click.ClickException as exc:
        app.terminal.error(usage_message(exc))
        return EXIT_USAGE
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C into Abort; an end of input at a prompt is an Abort too.
        interrupted = isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt)
        app.terminal.error("interrupted" if interrupted else "aborted")
        return 130
    except HelixdiagError as exc:
        app.terminal.error(exc.message, exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:
        app.terminal.error("interrupted")
        return 130
    except BrokenPipeError:  # a write that bypassed the guarded stdout; the reader is gone
        return 0
    except Exception:  # noqa: BLE001 - this is the crash boundary
        return _report_crash(app.terminal, sys.exc_info())
    return rv if isinstance(rv, int) else 0


def _interrupt_once() -> None:
    """The first Ctrl-C stops the command (KeyboardInterrupt); the ones after it, while the
    command tears down what it started, are ignored so that teardown finishes and no
    traceback is printed. Teardown is bounded, so this never keeps a command alive long."""
    if threading.current_thread() is not threading.main_thread():
        return

    def first(signum, frame) -> None:
        signal.signal(signal.SIGINT, later)
        raise KeyboardInterrupt

    def later(signum, frame) -> None:
        with contextlib.suppress(OSError):
            os.write(2, b"\nstill stopping: removing what this command started\n")
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    signal.signal(signal.SIGINT, first)


def usage_message(exc: click.ClickException) -> str:
    """click's message (with its "did you mean" suggestions), in our one-line style."""
    message = " ".join(exc.format_message().split())
    if len(message) > 1 and message[0].isupper() and message[1].islower():
        message = message[0].lower() + message[1:]
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        message += ("" if message.endswith((".", "?", "!", ")")) else ".") + \
            f" Try '{ctx.command_path} --help'."
    return message


def _report_crash(terminal: Terminal, exc_info: tuple) -> int:
    """Exit 3: a short message, the traceback in a file the user can attach."""
    with tempfile.NamedTemporaryFile(
        "w", prefix="helixdiag-crash-", suffix=".txt", delete=False
    ) as fh:
        traceback.print_exception(*exc_info, file=fh)
        path = fh.name
    exc = exc_info[1]
    terminal.error(
        f"helixdiag crashed: {type(exc).__name__}: {exc}",
        hint=f"traceback written to {path}; please attach it to a bug report",
    )
    return EXIT_CRASH
