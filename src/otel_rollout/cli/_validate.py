"""``otel-rollout validate BUNDLE|DIR...``."""

from __future__ import annotations

from pathlib import Path

import click

from otel_rollout.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, error
from otel_rollout.cli._targets import bundles_argument


@click.command("validate")
@bundles_argument()
@click.option(
    "--max-problems",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Report at most this many problems.",
)
def command(bundle: tuple[Path, ...], max_problems: int) -> int:
    """Check each bundle's manifest, every event line and every payload reference.

    A directory that is not a bundle is searched for bundles (symbolic links are not
    followed). Problems go to stderr as PATH:LINE: REASON (line 0 is manifest.json), a
    torn last line as a warning; a valid bundle gets one summary line on stdout, many
    bundles a last line counting them. Exit 0 when all are valid, 1 when one is not, 2
    when one cannot be read.
    """
    from otel_rollout.cli._targets import find_bundles, run_each

    targets = find_bundles(bundle)
    return run_each(targets, "validated", lambda bundle: _validate(bundle, max_problems))


def _validate(bundle: Path, max_problems: int) -> int:
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
