"""Checking a bundle against the format, reporting every problem with file and line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from otel_rollout._bundle import Bundle, BundleError, decode_event
from otel_rollout._models import (
    SCHEMA_VERSION,
    CodexTurnStarted,
    RecordingCompleted,
    ThreadStarted,
    payload_refs,
)

DEFAULT_MAX_PROBLEMS = 100


@dataclass(frozen=True)
class Problem:
    """One defect: the file, the line (0 for the manifest) and the reason."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        """Render as ``<path>:<line>: <reason>``."""
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass
class ValidationReport:
    """What :func:`validate_bundle` found."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    truncated: bool = False
    """More problems existed than were kept."""
    events: int = 0
    threads: int = 0
    turns: int = 0
    payloads: int = 0
    bytes: int = 0

    @property
    def ok(self) -> bool:
        """Whether the bundle has no problem."""
        return not self.problems

    def summary(self) -> str:
        """The one-line success summary."""
        return (
            f"ok: {self.events} events, {self.threads} threads, {self.turns} turns, "
            f"{self.payloads} payloads, {self.bytes} bytes"
        )


class _Collector:
    """Accumulates problems up to a limit."""

    def __init__(self, report: ValidationReport, limit: int) -> None:
        self.report = report
        self.limit = limit

    def add(self, path: Path, line: int, reason: str) -> None:
        if len(self.report.problems) >= self.limit:
            self.report.truncated = True
            return
        self.report.problems.append(Problem(os.fspath(path), line, reason))


def validate_bundle(
    path: str | os.PathLike[str], *, max_problems: int = DEFAULT_MAX_PROBLEMS
) -> ValidationReport:
    """Check a bundle's manifest, every event line and every payload reference.

    Args:
        path: The bundle directory.
        max_problems: Keep at most this many problems.

    Returns:
        A report of every problem found (up to ``max_problems``), warnings (a torn
        last line) and counts.
    """
    report = ValidationReport()
    found = _Collector(report, max_problems)
    try:
        bundle = Bundle(path)
    except BundleError as error:
        found.add(Path(error.path), error.line, error.reason)
        return report
    if bundle.manifest.schema_version != SCHEMA_VERSION:
        found.add(bundle.manifest_path, 0, _schema_reason(bundle.manifest.schema_version))
    checker = _EventChecker(bundle, found)
    last_line = 0
    try:
        for line in bundle.lines():
            last_line = line.number
            checker.check(line.number, line.data)
    except BundleError as error:
        found.add(Path(error.path), error.line, error.reason)
        return report
    tail = bundle.torn_tail()
    if tail:
        report.warnings.append(
            Problem(
                os.fspath(bundle.event_log_path),
                last_line + 1,
                f"torn last line ({len(tail)} bytes after the last newline) ignored",
            )
        )
    report.threads = len(checker.threads)
    report.turns = len(checker.turns)
    report.payloads = len(checker.payload_paths)
    for file in (bundle.manifest_path, bundle.event_log_path):
        try:
            report.bytes += file.stat().st_size
        except OSError:
            pass
    return report


def _schema_reason(version: int) -> str:
    return f"schema_version {version} is not supported (expected {SCHEMA_VERSION})"


class _EventChecker:
    """Checks event lines in order, keeping what the checks need from earlier lines."""

    def __init__(self, bundle: Bundle, found: _Collector) -> None:
        self.bundle = bundle
        self.found = found
        self.log = bundle.event_log_path
        self.expected_seq = 1
        self.completed_at: int | None = None
        self.payload_paths: set[str] = set()
        self.threads: set[str] = set()
        self.turns: set[str] = set()

    def check(self, number: int, data: bytes) -> None:
        """Check one line; ``number`` is its 1-based line number."""
        report = self.found.report
        try:
            event = decode_event(data)
        except ValueError as error:
            self.found.add(self.log, number, str(error))
            self.expected_seq += 1
            return
        report.events += 1
        if event.schema_version != SCHEMA_VERSION:
            self.found.add(self.log, number, _schema_reason(event.schema_version))
        if event.seq != self.expected_seq:
            kind = "gap" if event.seq > self.expected_seq else "disorder"
            self.found.add(
                self.log, number, f"seq {kind}: expected {self.expected_seq}, found {event.seq}"
            )
        self.expected_seq = event.seq + 1
        rollout_id = self.bundle.manifest.rollout_id
        if event.rollout_id != rollout_id:
            self.found.add(
                self.log,
                number,
                f"rollout_id {event.rollout_id!r} differs from the manifest's {rollout_id!r}",
            )
        if self.completed_at is not None:
            self.found.add(
                self.log, number, f"event after recording_completed (line {self.completed_at})"
            )
        payload = event.payload
        if isinstance(payload, RecordingCompleted) and self.completed_at is None:
            self.completed_at = number
        elif isinstance(payload, ThreadStarted):
            self.threads.add(payload.thread_id)
        elif isinstance(payload, CodexTurnStarted):
            self.turns.add(payload.codex_turn_id)
        for ref in payload_refs(payload):
            self._check_payload(number, ref.path)

    def _check_payload(self, number: int, relative: str) -> None:
        if relative in self.payload_paths:
            return
        try:
            self.bundle.read_payload(relative)
            size = self.bundle.payload_path(relative).stat().st_size
        except (ValueError, OSError) as error:
            self.found.add(self.log, number, str(error))
            return
        self.payload_paths.add(relative)
        self.found.report.bytes += size
