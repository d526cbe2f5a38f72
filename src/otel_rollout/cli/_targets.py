"""Which bundles a command's paths name, and running a command over each of them.

The one rule, for every command that takes bundles (``validate``, ``reduce``, ``show``,
``replay``): a path is a bundle when it holds ``manifest.json`` or ``trace.jsonl``;
any other directory is searched, recursively, for bundles (a bundle's own directory is
not searched further, and symbolic links to directories are not followed). Every
bundle is processed, even when some fail; the exit code is the worst of them: 2 if a
path cannot be read, else 1 if a bundle is invalid or failed, else 0.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import click
import msgspec

from otel_rollout.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, error

BUNDLE_FILES = ("manifest.json", "trace.jsonl")
"""A directory holding either is a bundle (a broken one, if the manifest is missing)."""


class BundlesArgument(click.Argument):
    """``BUNDLE...`` in the usage line; errors name it ``'BUNDLE'``, as for one bundle."""

    def get_error_hint(self, ctx: click.Context | None) -> str:
        return f"'{self.human_readable_name}'"


def bundles_argument() -> Callable[[Callable[..., int]], Callable[..., int]]:
    """The ``BUNDLE...`` argument of every command that takes bundles: existing directories."""
    return click.argument(
        "bundle",
        cls=BundlesArgument,
        nargs=-1,
        required=True,
        type=click.Path(exists=True, file_okay=False, readable=True, path_type=Path),
    )


class Targets(msgspec.Struct):
    """The bundles a command's paths name, in path order (each directory's sorted)."""

    bundles: list[Path] = msgspec.field(default_factory=list)
    many: bool = False
    """More than one path, or a directory searched: the command reports per bundle."""
    roots: dict[Path, Path] = msgspec.field(default_factory=dict)
    """bundle -> the path given that found it (for output names relative to it)."""
    exit_code: int = EXIT_OK
    """EXIT_USAGE if a directory could not be searched, EXIT_INVALID if one held no bundle."""


def is_bundle(path: Path) -> bool:
    """Whether ``path`` is a bundle directory (see the module's rule)."""
    return any(os.path.lexists(path / name) for name in BUNDLE_FILES)


def find_bundles(paths: Sequence[Path]) -> Targets:
    """The bundles under ``paths``; a directory that cannot be searched or holds no bundle
    is reported on stderr and counted in ``exit_code``.
    """
    targets = Targets(many=len(paths) > 1)
    for path in paths:
        if is_bundle(path):
            targets.bundles.append(path)
            targets.roots[path] = path
            continue
        targets.many = True
        found = _search(path, targets)
        if not found and targets.exit_code != EXIT_USAGE:
            error(f"{path}: no trace bundle (a directory with {BUNDLE_FILES[0]}) in it or below")
            targets.exit_code = max(targets.exit_code, EXIT_INVALID)
        for bundle in found:
            targets.bundles.append(bundle)
            targets.roots[bundle] = path
    return targets


def _search(root: Path, targets: Targets) -> list[Path]:
    found: list[Path] = []

    def unreadable(failure: OSError) -> None:
        error(f"{failure.filename}: cannot read: {failure.strerror}")
        targets.exit_code = EXIT_USAGE

    for directory, subdirectories, _ in os.walk(root, onerror=unreadable, followlinks=False):
        subdirectories.sort()
        here = Path(directory)
        if here != root and is_bundle(here):
            found.append(here)
            subdirectories.clear()  # a bundle's payloads hold no bundles
    return found


def run_each(targets: Targets, verb: str, work: Callable[[Path], int]) -> int:
    """Run ``work`` (which reports its own output and returns an exit code) on every
    bundle; with many, one progress bar on a terminal's stderr and a summary line.
    Returns the worst exit code, the search's included.
    """
    codes: dict[Path, int] = {}
    progress = None
    if targets.many and len(targets.bundles) > 1 and sys.stderr.isatty():
        from rich.progress import Progress  # only on a terminal: rich costs start-up

        progress = Progress(transient=True)
    if progress is None:
        for bundle in targets.bundles:
            codes[bundle] = work(bundle)
    else:
        with progress:
            task = progress.add_task(verb, total=len(targets.bundles))
            for bundle in targets.bundles:
                codes[bundle] = work(bundle)
                progress.advance(task)
    worst = max([targets.exit_code, *codes.values()])
    if targets.many:
        failed = [bundle for bundle, code in codes.items() if code != EXIT_OK]
        for bundle in failed:
            reason = "cannot be read" if codes[bundle] == EXIT_USAGE else "failed"
            error(f"{bundle}: {reason}")
        click.echo(
            f"{verb} {len(codes)} bundle(s): {len(codes) - len(failed)} ok, {len(failed)} failed"
        )
    return worst


def list_bundles(bundles: list[Path]) -> int:
    """One line per bundle (path, rollout, schema, start), then how to see one; the exit
    code: 0, or that of the worst bundle whose manifest cannot be read.
    """
    from datetime import datetime, timezone

    from otel_rollout._bundle._reader import Bundle, BundleError

    worst = EXIT_OK
    for bundle in bundles:
        try:
            manifest = Bundle(bundle).manifest
        except BundleError as failure:
            error(str(failure))
            worst = max(worst, EXIT_USAGE if failure.unreadable else EXIT_INVALID)
            continue
        started = datetime.fromtimestamp(manifest.started_at_unix_ms / 1000, timezone.utc)
        click.echo(
            f"{bundle}  rollout {manifest.rollout_id}  schema {manifest.schema_version}  "
            f"started {started:%Y-%m-%d %H:%M:%S} UTC"
        )
    if bundles:
        click.echo(f"{len(bundles)} bundles: `otel-rollout show BUNDLE` shows one")
    return worst
