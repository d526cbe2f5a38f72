"""``otel-rollout view BUNDLE [-o FILE.html] [--open]``: the rollout as one HTML page."""

from __future__ import annotations

from pathlib import Path

import click

from otel_rollout.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, error


@click.command("view")
@click.argument(
    "bundle",
    type=click.Path(exists=True, file_okay=False, readable=True, path_type=Path),
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the page.  [default: ./rollout-<trace_id>.html]",
)
@click.option("--open", "open_it", is_flag=True, help="Open the page in the default browser.")
def command(bundle: Path, output: Path | None, open_it: bool) -> int:
    """Write BUNDLE as one self-contained HTML page and print its path.

    The page opens from disk with no server and no network: the agent graph, a
    timeline per thread, the conversation with tool calls and their arguments, raw
    payloads on demand, and a search box. It holds the prompts, so it is written
    readable by you only (mode 0600), replacing a file of the same name.
    """
    from otel_rollout._bundle._reader import BundleError
    from otel_rollout._view._page import write_view

    try:
        target = write_view(bundle, output, warn=lambda message: error(f"warning: {message}"))
    except BundleError as failure:
        error(str(failure))
        return EXIT_USAGE if failure.unreadable else EXIT_INVALID
    except OSError as failure:
        error(f"cannot write {failure.filename or output}: {failure.strerror}")
        return EXIT_USAGE
    click.echo(str(target))
    if open_it:
        import webbrowser

        webbrowser.open(target.resolve().as_uri())
    return EXIT_OK
