"""Reading a trace bundle: the manifest, the event log line by line, and its payload store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import msgspec.inspect

from otel_rollout._bundle import _models
from otel_rollout._bundle._bounded import (
    LineTooLong,
    ReadRefused,
    complete_lines,
    last_line_end,
    open_regular,
    read_cap,
    read_regular,
)
from otel_rollout._bundle._models import (
    EVENT_TYPES,
    MANIFEST_FILE_NAME,
    RAW_EVENT_LOG_FILE_NAME,
    RawPayloadRef,
    RawTraceEvent,
    TraceBundleManifest,
)
from otel_rollout._bundle._payloads import PayloadFiles, PayloadStore, open_payload_store
from otel_rollout._bundle._schema import schema_problem
from otel_rollout._bundle._serde_forms import (
    decode_alternative,
    duplicate_field,
    struct_field_names,
)

_event_decoder = msgspec.json.Decoder(RawTraceEvent)
_encoder = msgspec.json.Encoder()
_FIELD_NAMES = struct_field_names(vars(_models).values())
"""Every field name of the bundle models: a duplicate of one of these is refused."""
_FIELD_KEYS = tuple(f'"{name}"'.encode() for name in sorted(_FIELD_NAMES))
"""Each field name as a JSON key: one written twice holds one of these twice (or an escape)."""


@cache
def _type_info(kind: type) -> msgspec.inspect.Type:
    """msgspec's description of ``kind``, built on first need (a decoding error):
    describing every event type costs each command's start-up otherwise."""
    return msgspec.inspect.type_info(kind)


T = TypeVar("T")
TOO_DEEP = "bad JSON: nested too deeply (more than about 1000 levels)"
"""msgspec's decoder recurses; past its depth an event or manifest is refused."""
_manifest_decoder = msgspec.json.Decoder(TraceBundleManifest)


class BundleError(Exception):
    """A bundle is malformed: names the file, the line (0 for the manifest) and the reason."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        line: int,
        reason: str,
        *,
        unreadable: bool = False,
    ) -> None:
        """Record where the problem is and what it is."""
        super().__init__(f"{os.fspath(path)}:{line}: {reason}")
        self.path = os.fspath(path)
        self.line = line
        self.reason = reason
        self.unreadable = unreadable
        """The file is there but could not be read (permissions, not a regular file, past
        the read cap): the command line exits 2 for these, 1 for a malformed bundle."""


def read_reason(error: OSError) -> str:
    """The reason for a file that is not read: ``cannot read: …`` or the refusal."""
    if isinstance(error, ReadRefused):
        return str(error)
    return f"cannot read: {error.strerror or error}"


def _unreadable(path: str | os.PathLike[str], line: int, error: OSError) -> BundleError:
    missing = isinstance(error, FileNotFoundError)  # a malformed bundle, not an unreadable one
    return BundleError(path, line, read_reason(error), unreadable=not missing)


def decode_event(line: bytes, schema_version: int | None = None) -> RawTraceEvent:
    """Decode one ``trace.jsonl`` line, as the Codex of ``schema_version`` parses it.

    With ``schema_version`` (the manifest's), what that schema lacks is refused as its
    Codex refuses it (``_schema``): a schema 3 event in a schema 2 bundle, a schema 2
    ref in a schema 3 bundle. Without it, either schema's fields are taken.

    Raises:
        ValueError: With a reason fit for a user: bad JSON, unknown event type,
            missing or mistyped field.
    """
    try:
        event = _event_decoder.decode(line)
    except msgspec.DecodeError as error:
        alternative = _alternative(line, _event_decoder, _type_info(RawTraceEvent))
        if alternative is None:
            raise ValueError(_explain(line, error)) from None
        event = alternative
    except RecursionError:
        raise ValueError(TOO_DEEP) from None
    if _encoder.encode(event) != line:  # not canonical (every Codex line is): look closer
        duplicate = duplicate_field(line, _FIELD_NAMES)
        if duplicate is not None:
            raise ValueError(f"bad event: duplicate field `{duplicate}`")
    if schema_version is not None:
        problem = schema_problem(event.payload, schema_version)
        if problem is not None:
            raise ValueError(problem)
    return event


def _alternative(data: bytes, decoder: msgspec.json.Decoder[T], info: Any) -> T | None:
    """``data`` decoded after rewriting serde's alternative forms, or ``None`` if it still fails."""
    try:
        value: T = decode_alternative(data, decoder, info)
    except (msgspec.DecodeError, RecursionError):
        return None
    return value


def _explain(line: bytes, error: msgspec.DecodeError) -> str:
    """Turn a msgspec decode error into a plain reason."""
    try:
        raw = msgspec.json.decode(line)
    except msgspec.DecodeError as json_error:
        return f"bad JSON: {json_error}"
    if not isinstance(raw, dict):
        return "bad event: not a JSON object"
    payload = raw.get("payload")
    if isinstance(payload, dict):
        event_type = payload.get("type")
        if isinstance(event_type, str) and event_type not in EVENT_TYPES:
            return f"unknown event type {event_type!r}"
    return _mismatch_reason(error, "event")


def decode_manifest(data: bytes) -> TraceBundleManifest:
    """Decode ``manifest.json``.

    Raises:
        ValueError: With a plain reason.
    """
    try:
        manifest = _manifest_decoder.decode(data)
    except msgspec.DecodeError as error:
        alternative = _alternative(data, _manifest_decoder, _type_info(TraceBundleManifest))
        if alternative is None:
            raise ValueError(_explain_manifest(data, error)) from None
        return alternative
    except RecursionError:
        raise ValueError(TOO_DEEP) from None
    if b"\\" in data or any(data.count(key) > 1 for key in _FIELD_KEYS):  # else none twice
        duplicate = duplicate_field(data, _FIELD_NAMES)
        if duplicate is not None:
            raise ValueError(f"bad manifest: duplicate field `{duplicate}`")
    return manifest


def _explain_manifest(data: bytes, error: msgspec.DecodeError) -> str:
    """Turn a msgspec decode error on the manifest into a plain reason."""
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError as json_error:
        return f"bad JSON: {json_error}"
    return _mismatch_reason(error, "manifest")


def _mismatch_reason(error: msgspec.DecodeError, what: str) -> str:
    """The reason for valid JSON that does not fit the schema of ``what``."""
    message = str(error)
    if "missing required field" in message:
        return f"missing field: {message.replace('Object missing required field ', '')}"
    return f"bad {what}: {message}"


@dataclass(frozen=True)
class EventLine:
    """One line of ``trace.jsonl``: its 1-based number and raw bytes (newline stripped)."""

    number: int
    data: bytes


class BundleFiles:
    """A bundle directory's files, opened without reading the manifest.

    Payloads are read on demand through :attr:`payloads`, confined to the bundle: a
    reference whose path is absolute, climbs with ``..`` or resolves through a symlink
    to outside the bundle is refused.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Locate the bundle's files under ``path``; nothing is read yet."""
        self.path = Path(path)
        self.manifest_path = self.path / MANIFEST_FILE_NAME
        self.event_log_path = self.path / RAW_EVENT_LOG_FILE_NAME
        self.read_cap = read_cap()
        """The most bytes read from one file or line (``OTEL_ROLLOUT_MAX_READ_BYTES``)."""
        self.payloads: PayloadStore = open_payload_store(self.path)
        """The bundle's payload bodies (the one way to read them)."""
        self.schema_version: int | None = None
        """The schema events are decoded by (the manifest's), once :meth:`use_schema` set it."""

    def use_schema(self, schema_version: int) -> None:
        """Decode events and read payloads as ``schema_version`` (from the manifest) says."""
        self.schema_version = schema_version
        self.payloads = open_payload_store(self.path, schema_version)

    def decode_event(self, line: bytes) -> RawTraceEvent:
        """Decode one ``trace.jsonl`` line by this bundle's schema (see :func:`decode_event`).

        Raises:
            ValueError: As :func:`decode_event`.
        """
        return decode_event(line, self.schema_version)

    def lines(self) -> Iterator[EventLine]:
        """Yield every complete line of ``trace.jsonl``, streaming, in time linear in its size.

        Bytes after the last newline (a torn line from a crash) are not yielded;
        :meth:`torn_tail_size` counts them.

        Raises:
            BundleError: The event log cannot be read, is not a regular file, or holds a
                line longer than the read cap (``unreadable`` set).
        """
        path = self.event_log_path
        try:
            handle = os.fdopen(open_regular(path), "rb")
        except OSError as error:
            raise _unreadable(path, 0, error) from None
        with handle:
            end, _ = last_line_end(handle)
            try:
                for number, data in complete_lines(handle, end, self.read_cap):
                    yield EventLine(number, data)
            except LineTooLong as error:
                raise _unreadable(path, error.line, error) from None
            except OSError as error:
                raise _unreadable(path, 0, error) from None

    def events(self) -> Iterator[tuple[int, RawTraceEvent]]:
        """Yield ``(line number, event)`` for every complete line (blank lines skipped).

        Raises:
            BundleError: A line does not decode.
        """
        for line in self.lines():
            if not line.data.strip():
                continue
            try:
                yield line.number, self.decode_event(line.data)
            except ValueError as error:
                raise BundleError(self.event_log_path, line.number, str(error)) from None

    def torn_tail_size(self) -> int:
        """Bytes after the last newline of ``trace.jsonl`` (0 if none, or unreadable)."""
        try:
            with os.fdopen(open_regular(self.event_log_path), "rb") as handle:
                end, size = last_line_end(handle)
        except OSError:
            return 0
        return size - end

    def torn_tail(self) -> bytes:
        """Return the bytes after the last newline of ``trace.jsonl`` (at most the read cap)."""
        try:
            with os.fdopen(open_regular(self.event_log_path), "rb") as handle:
                end, size = last_line_end(handle)
                handle.seek(end)
                return handle.read(min(size - end, self.read_cap))
        except OSError:
            return b""

    def payload_path(self, ref: RawPayloadRef | str) -> Path:
        """Resolve a payload reference to a path inside the bundle.

        Raises:
            ValueError: The path is empty, absolute, uses ``..`` or leads out of the
                bundle (through a symlink), or the bundle keeps no file per payload.
        """
        payloads = self.payloads
        if not isinstance(payloads, PayloadFiles):
            raise ValueError("this bundle keeps no file per payload")
        return payloads.path(ref)

    def read_payload_bytes(self, ref: RawPayloadRef | str) -> bytes:
        """Read a payload's bytes, confined to the bundle.

        Raises:
            ValueError: The path escapes the bundle, or the file is missing or unreadable.
        """
        return self.payloads.read(ref)

    def read_payload(self, ref: RawPayloadRef | str) -> Any:
        """Read and decode a payload.

        Raises:
            ValueError: The path escapes the bundle, the file is missing or not JSON.
        """
        return self.payloads.read_json(ref)


class Bundle(BundleFiles):
    """A bundle directory opened for reading, its manifest decoded."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open the bundle at ``path`` and read its manifest.

        Raises:
            BundleError: The manifest is missing or malformed (line 0).
        """
        super().__init__(path)
        try:
            data = read_regular(self.manifest_path, self.read_cap)
        except OSError as error:
            raise _unreadable(self.manifest_path, 0, error) from None
        try:
            self.manifest: TraceBundleManifest = decode_manifest(data)
        except ValueError as error:
            raise BundleError(self.manifest_path, 0, str(error)) from None
        self.use_schema(self.manifest.schema_version)
