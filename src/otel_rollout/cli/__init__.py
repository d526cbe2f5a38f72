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

_COMMANDS: dict[str, tuple[str, str]] = {
    "convert": (
        "otel_rollout.cli._convert",
        "Write BUNDLE again in another schema, for the Codex version that reads it.",
    ),
    "reduce": (
        "otel_rollout.cli._reduce",
        "Replay each bundle and write its reduced state as JSON, like `codex debug trace-reduce`.",
    ),
    "validate": (
        "otel_rollout.cli._validate",
        "Check each bundle's manifest, every event line and every payload reference.",
    ),
    "show": ("otel_rollout.cli._show", "Reduce BUNDLE and show what the agent did as a tree."),
    "replay": (
        "otel_rollout.cli._replay",
        "Send each BUNDLE's rollout as OTLP spans, span events and links.",
    ),
    "view": (
        "otel_rollout.cli._view",
        "Write BUNDLE as one self-contained HTML page and print its path.",
    ),
}
"""Subcommand name -> (module defining ``command``, imported only when that subcommand runs;
the first paragraph of its help, for ``--help``, which so imports none of them)."""


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
        if cmd_name not in _COMMANDS:
            return None
        command: click.Command = importlib.import_module(_COMMANDS[cmd_name][0]).command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their short help, as click lists them, from ``_COMMANDS``."""
        limit = formatter.width - 6 - max(map(len, _COMMANDS))
        rows = [
            (name, click.Command(name, help=summary).get_short_help_str(limit))
            for name, (_, summary) in sorted(_COMMANDS.items())
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


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
