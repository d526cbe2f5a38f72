"""Checking a bundle against the format, reporting every problem with file and line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from otel_rollout._bundle._models import (
    SCHEMA_VERSION,
    CodexTurnStarted,
    RawPayloadRef,
    RecordingCompleted,
    ThreadStarted,
    payload_refs,
)
from otel_rollout._bundle._reader import BundleError, BundleFiles, decode_event, decode_manifest

DEFAULT_MAX_PROBLEMS = 100
_ANY_JSON = msgspec.json.Decoder(msgspec.Raw)
"""Checks that a payload is JSON without building its value."""


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
    """More problems existed than were kept (checking stopped there)."""
    unreadable: bool = False
    """The bundle, its manifest or its event log exists but could not be read."""
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

    @property
    def full(self) -> bool:
        """Whether a problem beyond the limit was seen (checking may stop)."""
        return self.report.truncated

    def add(self, path: Path, line: int, reason: str) -> None:
        if len(self.report.problems) >= self.limit:
            self.report.truncated = True
            return
        self.report.problems.append(Problem(os.fspath(path), line, reason))


def validate_bundle(
    path: str | os.PathLike[str], *, max_problems: int = DEFAULT_MAX_PROBLEMS
) -> ValidationReport:
    """Check a bundle's manifest, every event line and every payload reference.

    Checks: the manifest decodes and has ``schema_version`` 2 (line 0); every line
    of ``trace.jsonl`` is JSON, a known event type with all its fields, schema
    version 2, the next ``seq`` (a gap or disorder is reported once, then checking
    follows the new number), the manifest's ``rollout_id``, and not after
    ``recording_completed``; every payload it references lies inside the bundle,
    exists and is JSON. Bytes after the last newline (a torn last line) give a
    warning, not a problem.

    Args:
        path: The bundle directory.
        max_problems: Stop after this many problems (``truncated`` is then set).

    Returns:
        Every problem (``<path>:<line>: <reason>``), the warnings, and counts.
    """
    report = ValidationReport()
    found = _Collector(report, max_problems)
    files = BundleFiles(path)
    if not files.path.is_dir():
        report.unreadable = True
        reason = "no such directory" if not files.path.exists() else "not a directory"
        found.add(files.path, 0, reason)
        return report
    rollout_id = _check_manifest(files, found)
    checker = _EventChecker(files, rollout_id, found)
    try:
        with files.event_log_path.open("rb"):
            pass
    except OSError as error:
        report.unreadable = not isinstance(error, FileNotFoundError)
        found.add(files.event_log_path, 0, f"cannot read: {error.strerror}")
        return report
    last_line = 0
    try:
        for line in files.lines():
            last_line = line.number
            checker.check(line.number, line.data)
            if found.full:
                return report
    except BundleError as error:  # the log vanished or failed mid-read
        report.unreadable = True
        found.add(Path(error.path), error.line, error.reason)
        return report
    tail = files.torn_tail()
    if tail:
        report.warnings.append(
            Problem(
                os.fspath(files.event_log_path),
                last_line + 1,
                f"torn last line ({len(tail)} bytes after the last newline) ignored",
            )
        )
    report.threads = len(checker.threads)
    report.turns = len(checker.turns)
    report.payloads = len(checker.payload_paths)
    for file in (files.manifest_path, files.event_log_path):
        try:
            report.bytes += file.stat().st_size
        except OSError:
            pass
    return report


def _check_manifest(files: BundleFiles, found: _Collector) -> str | None:
    """Check ``manifest.json`` (line 0) and return its ``rollout_id`` if it decodes."""
    try:
        data = files.manifest_path.read_bytes()
    except OSError as error:
        found.report.unreadable = not isinstance(error, FileNotFoundError)
        found.add(files.manifest_path, 0, f"cannot read: {error.strerror}")
        return None
    try:
        manifest = decode_manifest(data)
    except ValueError as error:
        found.add(files.manifest_path, 0, str(error))
        return None
    if manifest.schema_version != SCHEMA_VERSION:
        found.add(files.manifest_path, 0, _schema_reason(manifest.schema_version))
    return manifest.rollout_id


def _schema_reason(version: int) -> str:
    return f"schema_version {version} is not supported (expected {SCHEMA_VERSION})"


def _raw_seq(data: bytes) -> int | None:
    """The ``seq`` of a line that does not decode as an event, if it has one."""
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    seq = raw.get("seq") if isinstance(raw, dict) else None
    return seq if type(seq) is int else None


class _EventChecker:
    """Checks event lines in order, keeping what the checks need from earlier lines."""

    def __init__(self, files: BundleFiles, rollout_id: str | None, found: _Collector) -> None:
        self.files = files
        self.rollout_id = rollout_id
        self.found = found
        self.log = files.event_log_path
        self.expected_seq = 1
        self.completed_at: int | None = None
        self.reported_after_completed = False
        self.payload_paths: set[str] = set()
        self.threads: set[str] = set()
        self.turns: set[str] = set()

    def check(self, number: int, data: bytes) -> None:
        """Check one line; ``number`` is its 1-based line number."""
        try:
            event = decode_event(data)
        except ValueError as error:
            self.found.add(self.log, number, str(error))
            self._after_undecodable(number, data)
            return
        self.found.report.events += 1
        if event.schema_version != SCHEMA_VERSION:
            self.found.add(self.log, number, _schema_reason(event.schema_version))
        self._check_seq(number, event.seq)
        if self.rollout_id is not None and event.rollout_id != self.rollout_id:
            self.found.add(
                self.log,
                number,
                f"rollout_id {event.rollout_id!r} differs from the manifest's {self.rollout_id!r}",
            )
        self._check_after_completed(number)
        payload = event.payload
        if isinstance(payload, RecordingCompleted) and self.completed_at is None:
            self.completed_at = number
        elif isinstance(payload, ThreadStarted):
            self.threads.add(payload.thread_id)
        elif isinstance(payload, CodexTurnStarted):
            self.turns.add(payload.codex_turn_id)
        for ref in payload_refs(payload):
            self._check_payload(number, ref)

    def _after_undecodable(self, number: int, data: bytes) -> None:
        """Keep the seq and ordering checks in step past a line that does not decode."""
        seq = _raw_seq(data)
        if seq is None:
            self.expected_seq += 1  # assume the line held the next event
        else:
            self._check_seq(number, seq)
        self._check_after_completed(number)

    def _check_seq(self, number: int, seq: int) -> None:
        """Report a gap or disorder once, then expect the number after ``seq``."""
        if seq != self.expected_seq:
            kind = "gap" if seq > self.expected_seq else "disorder"
            reason = f"seq {kind}: expected {self.expected_seq}, found {seq}"
            self.found.add(self.log, number, reason)
        self.expected_seq = seq + 1

    def _check_after_completed(self, number: int) -> None:
        """Report the first line after ``recording_completed`` (once: the rest follow it)."""
        if self.completed_at is not None and not self.reported_after_completed:
            self.reported_after_completed = True
            self.found.add(
                self.log, number, f"event after recording_completed (line {self.completed_at})"
            )

    def _check_payload(self, number: int, ref: RawPayloadRef) -> None:
        if ref.raw_payload_id in self.payload_paths:
            return
        payloads = self.files.payloads
        try:
            data = payloads.read(ref)
            payloads.decode(ref, data, _ANY_JSON)
        except ValueError as error:
            self.found.add(self.log, number, str(error))
            return
        self.payload_paths.add(ref.raw_payload_id)
        self.found.report.bytes += len(data)
