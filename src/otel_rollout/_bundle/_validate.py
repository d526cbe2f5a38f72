"""Checking a bundle against the format, reporting every problem with file and line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from otel_rollout._bundle._bounded import read_regular
from otel_rollout._bundle._models import (
    SCHEMA_2,
    SCHEMA_VERSIONS,
    CodexTurnStarted,
    RawPayloadRef,
    RecordingCompleted,
    ThreadStarted,
)
from otel_rollout._bundle._payloads import PayloadShards
from otel_rollout._bundle._reader import (
    BundleError,
    BundleFiles,
    decode_event,
    decode_manifest,
    read_reason,
)
from otel_rollout._bundle._schema import RefRegistry, is_omitted, is_truncated, schema_refs

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
        counts = (
            (self.events, "event"),
            (self.threads, "thread"),
            (self.turns, "turn"),
            (self.payloads, "payload"),
            (self.bytes, "byte"),
        )
        return "ok: " + ", ".join(f"{n} {noun}{'' if n == 1 else 's'}" for n, noun in counts)


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

    Checks: the manifest decodes and has ``schema_version`` 2 or 3 (line 0); every
    line of ``trace.jsonl`` is JSON, an event of that schema with all its fields (as
    the Codex of that schema parses it), the manifest's schema version, the next
    ``seq`` (a gap or disorder is reported once, then checking follows the new
    number), the manifest's ``rollout_id``, and not after ``recording_completed``;
    every payload it references (a ref's ``parts`` too) can be read and is JSON.
    Schema 2: the file lies inside the bundle and exists. Schema 3: its shard exists
    and is whole zstd within the read bound, holds the record once and whole, a
    truncated record has ``retained_bytes`` (and is not JSON-checked), an omitted one
    has no shard, and refs to one payload agree (0.171.0's reasons). Bytes after the
    last newline (a torn last line) give a warning, not a problem.

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
    rollout_id, schema_version = _check_manifest(files, found)
    checker = _EventChecker(files, rollout_id, schema_version, found)
    last_line = 0
    try:
        for line in files.lines():
            last_line = line.number
            if not line.data.strip():
                continue  # a blank line: Codex skips it, and so does every reader here
            checker.check(line.number, line.data)
            if found.full:
                return report
    except BundleError as error:  # unreadable, not a file, a line past the cap
        report.unreadable = error.unreadable
        found.add(Path(error.path), error.line, error.reason)
        return report
    torn = files.torn_tail_size()
    if torn:
        report.warnings.append(
            Problem(
                os.fspath(files.event_log_path),
                last_line + 1,
                f"torn last line ({torn} bytes after the last newline) ignored",
            )
        )
    report.threads = len(checker.threads)
    report.turns = len(checker.turns)
    report.payloads = len(checker.payload_ids)
    if isinstance(files.payloads, PayloadShards):
        report.bytes += files.payloads.frame_bytes
    for file in (files.manifest_path, files.event_log_path):
        try:
            report.bytes += file.stat().st_size
        except OSError:
            pass
    return report


def _check_manifest(files: BundleFiles, found: _Collector) -> tuple[str | None, int | None]:
    """Check ``manifest.json`` (line 0); its ``rollout_id`` and supported schema, if any."""
    try:
        data = read_regular(files.manifest_path, files.read_cap)
    except OSError as error:
        found.report.unreadable = not isinstance(error, FileNotFoundError)
        found.add(files.manifest_path, 0, read_reason(error))
        return None, None
    try:
        manifest = decode_manifest(data)
    except ValueError as error:
        found.add(files.manifest_path, 0, str(error))
        return None, None
    if manifest.schema_version not in SCHEMA_VERSIONS:
        expected = " or ".join(str(version) for version in SCHEMA_VERSIONS)
        found.add(files.manifest_path, 0, _schema_reason(manifest.schema_version, expected))
        return manifest.rollout_id, None
    files.use_schema(manifest.schema_version)
    return manifest.rollout_id, manifest.schema_version


def _check_utf8(what: str, data: bytes) -> None:
    """Refuse invalid UTF-8 (inside a string: the raw decoder does not look there; serde does).

    Raises:
        ValueError: As the reducer's full decode says it.
    """
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{what} is not JSON: invalid UTF-8 at byte {error.start}") from None


def _schema_reason(version: int, expected: object) -> str:
    return f"schema_version {version} is not supported (expected {expected})"


def _raw_seq(data: bytes) -> int | None:
    """The ``seq`` of a line that does not decode as an event, if it has one."""
    try:
        raw = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return None
    seq = raw.get("seq") if isinstance(raw, dict) else None
    return seq if type(seq) is int else None


class _EventChecker:
    """Checks event lines in order, keeping what the checks need from earlier lines."""

    def __init__(
        self,
        files: BundleFiles,
        rollout_id: str | None,
        schema_version: int | None,
        found: _Collector,
    ) -> None:
        self.files = files
        self.rollout_id = rollout_id
        self.schema_version = schema_version
        """The manifest's schema; else that of the first event of a known schema."""
        self.refs = RefRegistry()
        self.found = found
        self.log = files.event_log_path
        self.expected_seq = 1
        self.completed_at: int | None = None
        self.reported_after_completed = False
        self.payload_ids: set[str] = set()
        self.threads: set[str] = set()
        self.turns: set[str] = set()

    def check(self, number: int, data: bytes) -> None:
        """Check one line; ``number`` is its 1-based line number."""
        try:
            event = decode_event(data, self.schema_version)
        except ValueError as error:
            self.found.add(self.log, number, str(error))
            self._after_undecodable(number, data)
            return
        self.found.report.events += 1
        if self.schema_version is None and event.schema_version in SCHEMA_VERSIONS:
            self.schema_version = event.schema_version  # the manifest did not say
            self.files.use_schema(event.schema_version)
        self._check_schema_version(number, event.schema_version)
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
        for ref in schema_refs(payload, self.schema_version or SCHEMA_2):
            self._check_payload(number, ref)

    def _check_schema_version(self, number: int, version: int) -> None:
        """Report an event of another schema than the manifest's (or of none known)."""
        expected = self.schema_version
        if version == expected:
            return
        if version not in SCHEMA_VERSIONS or expected is None:
            self.found.add(self.log, number, _schema_reason(version, expected or SCHEMA_2))
        else:
            reason = f"schema_version {version} differs from the manifest's {expected}"
            self.found.add(self.log, number, reason)

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
        """Check one ref (schema 3: against the earlier refs to its payload) and read it once."""
        payload_id = ref.raw_payload_id
        if self.schema_version == SCHEMA_2 or self.schema_version is None:
            new = payload_id not in self.payload_ids
        else:
            new, problem = self.refs.add(ref)
            if problem is not None:
                self.found.add(self.log, number, problem)
                return
            if is_omitted(ref):
                self.payload_ids.add(payload_id)
                return
        if not new or payload_id in self.payload_ids:
            return
        self.payload_ids.add(payload_id)
        payloads = self.files.payloads
        try:
            data = payloads.read(ref)
            if not is_truncated(ref):  # a truncated record is a prefix, not JSON
                payloads.decode(ref, data, _ANY_JSON)
                _check_utf8(payloads.describe(ref), data)
        except ValueError as error:
            self.found.add(self.log, number, str(error))
            return
        if not isinstance(payloads, PayloadShards):
            self.found.report.bytes += len(data)
