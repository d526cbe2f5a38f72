"""The ``otel-rollout`` command line.

Exit codes, for every subcommand: 0 success; 1 the input is invalid or a check
failed; 2 a usage error or a path that cannot be read. Errors go to stderr as
``otel-rollout: <message>``, never as a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

_COMMANDS: dict[str, str] = {
    "convert": "otel_rollout.cli._convert",
    "reduce": "otel_rollout.cli._reduce",
    "validate": "otel_rollout.cli._validate",
    "show": "otel_rollout.cli._show",
    "replay": "otel_rollout.cli._replay",
    "view": "otel_rollout.cli._view",
}
"""Subcommand name -> module defining ``command``, imported only when that subcommand runs."""


class InvalidInput(click.ClickException):
    """The input is invalid or a check failed: exit 1."""

    exit_code = EXIT_INVALID


class UnreadablePath(click.ClickException):
    """A path cannot be read: exit 2."""

    exit_code = EXIT_USAGE


class _LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (keeps start-up light)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = _COMMANDS.get(cmd_name)
        if module_name is None:
            return None
        command: click.Command = importlib.import_module(module_name).command
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="otel-rollout", prog_name="otel-rollout")
def cli() -> None:
    """Inspect, validate, reduce, view, replay and convert rollout trace bundles."""


def error(message: str) -> None:
    """Write ``otel-rollout: <message>`` to stderr."""
    click.echo(f"otel-rollout: {message}", err=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (callable in-process)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:  # bare `otel-rollout`: the help on stdout, exit 2 (no command given)
        with click.Context(cli, info_name="otel-rollout") as ctx:
            click.echo(ctx.get_help())
        return EXIT_USAGE
    try:
        result: Any = cli.main(args=args, prog_name="otel-rollout", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.Abort:
        error("aborted")
        return EXIT_INVALID
    except click.UsageError as usage:
        error(usage.format_message())
        return EXIT_USAGE
    except click.ClickException as failure:
        error(failure.format_message())
        return failure.exit_code
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    except OSError as failure:  # a path that cannot be read or written
        where = f"{failure.filename}: " if failure.filename else ""
        error(f"{where}{failure.strerror or failure}")
        return EXIT_USAGE
    except Exception as failure:  # a bug: still no traceback unless asked for
        if os.environ.get("OTEL_ROLLOUT_DEBUG"):
            raise
        name = type(failure).__name__
        error(f"internal error: {name}: {failure} (OTEL_ROLLOUT_DEBUG=1 shows the traceback)")
        return EXIT_INVALID
    return result if isinstance(result, int) else EXIT_OK
