"""The `helixdiag` command: a thin click group over the library.

One module per command; each parses its options, calls the library and hands the result
to the terminal or a renderer. `main()` maps errors to the exit codes of SPEC.md §3.
"""

from __future__ import annotations

import sys
import tempfile
import traceback
from dataclasses import dataclass

import click

from helixdiag import __version__
from helixdiag.errors import EXIT_CRASH, HelixdiagError
from helixdiag.terminal import Terminal

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@dataclass
class App:
    """What every command receives: the terminal and the global options."""

    terminal: Terminal
    verbosity: int


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="helixdiag")
@click.option("-v", "--verbose", count=True, help="Show more detail (every probe's evidence).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and the final verdict.")
@click.option(
    "--no-color",
    is_flag=True,
    envvar="HELIXDIAG_NO_COLOR",
    help="Plain output without colour (also: NO_COLOR=1).",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, no_color: bool) -> None:
    """Diagnose the Helix video path hop by hop.

    \b
    guest: PipeWire ─► pipewiresrc ─► vsockenc ─► TCP 10.0.2.2:PORT
    host:  [socat ─► Unix socket ─►] QEMU helix-frame-export ─► VideoToolbox H.264

    \b
    Start here:
      helixdiag selftest              the bundled local stack, diagnosed
      helixdiag run --all             probe every layer that applies here
      helixdiag explain socket-stale  what a failure id means and how to fix it

    Exit codes: 0 no failure, 1 a failure was found, 2 usage/configuration error,
    3 helixdiag itself crashed.
    """
    verbosity = -1 if quiet else verbose
    ctx.obj = App(terminal=Terminal(verbosity=verbosity, no_color=no_color), verbosity=verbosity)


def _register_commands() -> None:
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
        cmd_watch,
    )

    for module in (cmd_run, cmd_watch, cmd_fix, cmd_selftest, cmd_serve, cmd_send, cmd_lint, cmd_logs,
                   cmd_explain, cmd_list):
        cli.add_command(module.command)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: never lets a traceback reach the user by accident."""
    try:
        rv = cli.main(args=argv, prog_name="helixdiag", standalone_mode=False)
    except click.exceptions.Abort:
        Terminal().error("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except HelixdiagError as exc:
        Terminal().error(exc.message, exc.hint)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        Terminal().error("interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception:  # noqa: BLE001 - this is the crash boundary
        sys.exit(_report_crash())
    sys.exit(rv if isinstance(rv, int) else 0)


def _report_crash() -> int:
    """Exit 3: a short message, the traceback in a file the user can attach."""
    with tempfile.NamedTemporaryFile(
        "w", prefix="helixdiag-crash-", suffix=".txt", delete=False
    ) as fh:
        traceback.print_exc(file=fh)
        path = fh.name
    exc = sys.exc_info()[1]
    Terminal().error(
        f"helixdiag crashed: {type(exc).__name__}: {exc}",
        hint=f"traceback written to {path}; please attach it to a bug report",
    )
    return EXIT_CRASH
