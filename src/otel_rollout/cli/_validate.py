"""``otel-rollout validate BUNDLE``."""

from __future__ import annotations

from pathlib import Path

import click

from otel_rollout.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, error


@click.command("validate")
@click.argument(
    "bundle",
    type=click.Path(exists=True, file_okay=False, readable=True, path_type=Path),
)
@click.option(
    "--max-problems",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Report at most this many problems.",
)
def command(bundle: Path, max_problems: int) -> int:
    """Check BUNDLE's manifest, every event line and every payload reference.

    Problems go to stderr as PATH:LINE: REASON (line 0 is manifest.json), a torn
    last line as a warning; on success one summary line goes to stdout. Exit 0 when
    valid, 1 when not, 2 when the bundle cannot be read.
    """
    from otel_rollout._bundle._validate import validate_bundle

    report = validate_bundle(bundle, max_problems=max_problems)
    for warning in report.warnings:
        error(f"warning: {warning}")
    if report.ok:
        click.echo(report.summary())
        return EXIT_OK
    for problem in report.problems:
        click.echo(str(problem), err=True)
    more = f" (stopped after {max_problems})" if report.truncated else ""
    error(f"{bundle}: {len(report.problems)} problem(s){more}")
    return EXIT_USAGE if report.unreadable else EXIT_INVALID
