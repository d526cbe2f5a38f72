"""``otel-rollout reduce BUNDLE... [-o OUT]`` (a directory that is not a bundle is searched)."""

from __future__ import annotations

import gc
from pathlib import Path

import click

from otel_rollout.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, error
from otel_rollout.cli._targets import bundles_argument


@click.command("reduce")
@bundles_argument()
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the reduced state JSON: a file for one bundle; for many, a "
    "directory, holding OUT/<bundle's path under DIR>/state.json.  [default: BUNDLE/state.json]",
)
def command(bundle: tuple[Path, ...], output: Path | None) -> int:
    """Replay each bundle and write its reduced state as JSON, like `codex debug trace-reduce`.

    The output is byte-identical to Codex's (0.169.0 for schema 2, 0.171.0 for schema 3).
    A directory that is not a bundle is searched for bundles (symbolic links are not
    followed). Prints each output path. A malformed bundle is reported as PATH:LINE:
    REASON (exit 1, after the other bundles); a torn last line, left by a crash, is
    dropped with a warning.
    """
    from otel_rollout.cli._targets import find_bundles, run_each

    targets = find_bundles(bundle)
    if not targets.many:
        if output is not None and output.is_dir():
            raise click.BadParameter(f"File {str(output)!r} is a directory.", param_hint="'-o'")
        return _reduce(targets.bundles[0], output)

    def target(bundle: Path) -> Path | None:
        if output is None:
            return None
        root = targets.roots[bundle]
        relative = bundle.relative_to(root) if bundle != root else Path(bundle.name)
        return output / relative / "state.json"

    return run_each(targets, "reduced", lambda bundle: _reduce(bundle, target(bundle)))


def _reduce(bundle: Path, output: Path | None) -> int:
    # The reducer makes no reference cycles and its heap only grows: the cyclic collector's
    # full passes over it (each longer than the last) are pure cost, a fifth of the CPU at
    # 100k events and growing with the bundle. This process is ours: the collector is off
    # until the trace is written and gone (then a pass costs nothing).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _reduce_and_write(bundle, output)
    finally:
        if collecting:
            gc.enable()


def _reduce_and_write(bundle: Path, output: Path | None) -> int:
    from otel_rollout._bundle._files import make_private_dirs
    from otel_rollout._bundle._reader import BundleError
    from otel_rollout._reduce import reduce_bundle, write_state

    target = output if output is not None else bundle / "state.json"
    try:
        trace = reduce_bundle(bundle, warn=lambda message: error(f"warning: {message}"))
    except BundleError as failure:
        error(str(failure))
        return EXIT_USAGE if failure.unreadable else EXIT_INVALID
    try:
        if output is not None and not target.parent.is_dir():
            make_private_dirs(target.parent)
        write_state(trace, target)  # owner-only: it holds the conversation
    except OSError as failure:
        error(f"cannot write {target}: {failure.strerror}")
        return EXIT_USAGE
    click.echo(str(target))
    return EXIT_OK
