"""``otel-rollout convert BUNDLE --to 3|2 -o OUT``."""

from __future__ import annotations

from pathlib import Path

import click

from otel_rollout.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, error


@click.command("convert")
@click.argument(
    "bundle",
    type=click.Path(exists=True, file_okay=False, readable=True, path_type=Path),
)
@click.option(
    "--to",
    "to",
    type=click.Choice(["2", "3"]),
    required=True,
    help="The schema to write: 3 (Codex 0.171.0) or 2 (Codex 0.169.0/0.170.0).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory to write the converted bundle into (as trace-<trace_id>-<thread_id>/).",
)
def command(bundle: Path, to: str, output: Path) -> int:
    """Write BUNDLE again in another schema, for the Codex version that reads it.

    2 -> 3 adds prepared prompts (from each request) and tool-output payloads; 3 -> 2
    drops them and code_cell_wait_target_resolved events, and refuses a bundle with a
    truncated or omitted payload. Prints the new bundle's path. Exit 0 when written,
    1 when the bundle is malformed or cannot be converted, 2 when a path cannot be read
    or written.
    """
    from otel_rollout._bundle._convert import ConvertError, convert_bundle
    from otel_rollout._bundle._reader import BundleError

    try:
        written = convert_bundle(bundle, output, int(to))
    except BundleError as failure:
        error(str(failure))
        return EXIT_USAGE if failure.unreadable else EXIT_INVALID
    except ConvertError as failure:
        error(str(failure))
        return EXIT_INVALID
    except OSError as failure:
        where = f"{failure.filename}: " if failure.filename else ""
        error(f"cannot write the converted bundle: {where}{failure.strerror or failure}")
        return EXIT_USAGE
    except ValueError as failure:  # a payload missing or not JSON
        error(f"{bundle}: {failure}")
        return EXIT_INVALID
    click.echo(str(written))
    return EXIT_OK
