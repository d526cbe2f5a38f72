"""``otel-rollout reduce BUNDLE [-o OUT]``."""

from __future__ import annotations

from pathlib import Path

import click

from otel_rollout.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, error


@click.command("reduce")
@click.argument(
    "bundle",
    type=click.Path(exists=True, file_okay=False, readable=True, path_type=Path),
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the reduced state JSON.  [default: BUNDLE/state.json]",
)
def command(bundle: Path, output: Path | None) -> int:
    """Replay BUNDLE and write its reduced state as JSON, like `codex debug trace-reduce`.

    The output is byte-identical to Codex 0.169.0's. Prints the output path. A
    malformed bundle is reported as PATH:LINE: REASON (exit 1); a torn last line,
    left by a crash, is dropped with a warning.
    """
    from otel_rollout._bundle._reader import BundleError
    from otel_rollout._reduce import reduce_bundle, write_state

    target = output if output is not None else bundle / "state.json"
    try:
        trace = reduce_bundle(bundle, warn=lambda message: error(f"warning: {message}"))
    except BundleError as failure:
        error(str(failure))
        return EXIT_USAGE if failure.unreadable else EXIT_INVALID
    try:
        write_state(trace, target)  # owner-only: it holds the conversation
    except OSError as failure:
        error(f"cannot write {target}: {failure.strerror}")
        return EXIT_USAGE
    click.echo(str(target))
    return EXIT_OK
