"""``otel-rollout replay BUNDLE [--endpoint URL] [--protocol P] [--header k=v ...]``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from otel_rollout.cli import EXIT_OK, InvalidInput, UnreadablePath, error
from otel_rollout.cli._targets import bundles_argument

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

    from otel_rollout._otel._replay import OtlpTarget

PROGRESS_THRESHOLD = 1000
"""Show a progress bar by default (on a terminal) from this many spans on."""


@click.command("replay")
@bundles_argument()
@click.option(
    "--endpoint",
    metavar="URL",
    help="Base URL as in OTEL_EXPORTER_OTLP_ENDPOINT (http/protobuf appends /v1/traces). "
    "Default: OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, else localhost:4318 (4317 for grpc).",
)
@click.option(
    "--protocol",
    type=click.Choice(["grpc", "http/protobuf"]),
    help="Default: OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL, else http/protobuf.",
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="KEY=VALUE",
    help="Request header, repeatable; added to OTEL_EXPORTER_OTLP_[TRACES_]HEADERS.",
)
@click.option(
    "--capture-content/--no-capture-content",
    default=None,
    help="Put (truncated) payload content on spans. "
    "Default: OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, as in live recording.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help=f"Progress bar on stderr (default: on a terminal, from {PROGRESS_THRESHOLD} spans).",
)
def command(
    bundle: tuple[Path, ...],
    endpoint: str | None,
    protocol: str | None,
    headers: tuple[str, ...],
    capture_content: bool | None,
    progress: bool | None,
) -> int:
    """Send each BUNDLE's rollout as OTLP spans, span events and links.

    A directory that is not a bundle is searched for bundles (symbolic links are not
    followed); each is replayed, even when some fail, and a last line counts them.

    Uses the same mapping as live recording: ids come from the bundle, so replaying
    twice (or after a live export) gives one trace, with the recorded timestamps.
    Prints a summary on stdout. Exit 0 when every span was accepted, 1 when the bundle
    is invalid or the endpoint refused or did not answer, 2 on a usage error (a bad
    endpoint, protocol or header) or an unreadable bundle.
    """
    from otel_rollout._otel._replay import ExportError, resolve_target
    from otel_rollout.cli._targets import find_bundles, run_each

    try:
        target = resolve_target(endpoint, protocol, headers)
    except ExportError as failure:  # a bad endpoint, protocol or header: a usage error
        raise click.UsageError(str(failure)) from None
    targets = find_bundles(bundle)
    if not targets.many:
        return _replay(targets.bundles[0], target, capture_content, progress)

    def replay_one(one: Path) -> int:
        try:
            return _replay(one, target, capture_content, False)
        except click.ClickException as failure:
            error(failure.format_message())
            return failure.exit_code

    return run_each(targets, "replayed", replay_one)


def checked_spans(
    bundle: Path, capture_content: bool | None, warn: Callable[[str], None] | None = None
) -> list[ReadableSpan]:
    """The bundle's spans, once the reducer accepts the bundle.

    Replay sends only what ``reduce`` accepts, judged the same way (every payload read and
    parsed), and says why at the same line (a :class:`BundleError`) before sending anything.
    The spans are built in the same pass, from the events and payload bytes the check read.
    """
    from otel_rollout._bundle._reader import Bundle
    from otel_rollout._otel._replay import BundleSpans
    from otel_rollout._reduce import reduce_bundle

    opened = Bundle(bundle)
    build = BundleSpans(opened, capture_content=capture_content)
    reduce_bundle(opened, warn=warn, on_event=build.add)  # one pass: check and build
    return build.spans()


def _replay(
    bundle: Path, target: OtlpTarget, capture_content: bool | None, progress: bool | None
) -> int:
    """Replay one bundle, reporting on stdout; a failure raises a ``ClickException``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from otel_rollout._bundle._reader import BundleError
    from otel_rollout._otel._replay import ExportError, export_spans

    console = Console(stderr=True)

    def read() -> list[ReadableSpan]:
        return checked_spans(
            bundle, capture_content, warn=lambda message: error(f"warning: {message}")
        )

    try:
        if console.is_terminal and progress is not False:
            with console.status("reading the bundle", spinner="dots"):
                spans = read()
        else:
            spans = read()
    except BundleError as failure:
        if failure.unreadable:
            raise UnreadablePath(str(failure)) from None
        raise InvalidInput(str(failure)) from None

    show = (
        console.is_terminal and len(spans) >= PROGRESS_THRESHOLD if progress is None else progress
    )
    try:
        with Progress(
            TextColumn("replay"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("spans"),
            console=console,
            transient=True,
            disable=not show,
        ) as bar:
            task = bar.add_task("replay", total=len(spans))
            result = export_spans(spans, target, lambda n: bar.advance(task, n))
    except ExportError as failure:
        raise InvalidInput(str(failure)) from None

    traces = ", ".join(f"{trace_id:032x}" for trace_id in result.trace_ids) or "none"
    click.echo(
        f"replayed {result.spans} spans of trace {traces} in {result.requests} request(s) "
        f"to {result.url} ({target.protocol}) in {result.seconds:.2f} s ({bundle})"
    )
    return EXIT_OK
