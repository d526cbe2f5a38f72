"""``otel-rollout validate BUNDLE``."""

from __future__ import annotations

from pathlib import Path

import click

from otel_rollout.cli import EXIT_INVALID, EXIT_OK, error


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

    Problems go to stderr as PATH:LINE: REASON (line 0 is manifest.json); on
    success one summary line goes to stdout.
    """
    from otel_rollout._validate import validate_bundle

    report = validate_bundle(bundle, max_problems=max_problems)
    for warning in report.warnings:
        error(f"warning: {warning}")
    if not report.ok:
        for problem in report.problems:
            click.echo(str(problem), err=True)
        more = " (more not shown)" if report.truncated else ""
        error(f"{len(report.problems)} problem(s) found in {bundle}{more}")
        return EXIT_INVALID
    click.echo(report.summary())
    return EXIT_OK
