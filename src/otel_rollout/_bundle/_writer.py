"""The bundle writer: Codex's on-disk layout, safe across OS threads, stops on failure.

One writer serves a whole rollout (the root thread and every child thread). ``seq``
starts at 1 and is consumed only by an append that reached the disk, so a bundle
never has a gap. Each payload file is written to a temporary name and renamed, so it
is whole or absent, and it exists before the event that refers to it is appended
(the payload store, ``_payloads``, numbers and writes them).
The first I/O failure stops the writer: the bundle stays valid up to that point, the
failure is logged once, and every later call is a cheap no-op.

Schema 3 (Codex 0.171.0) packs payloads as records into zstd shards instead
(``_payloads.PayloadShardWriter``). A shard is sealed (written whole) on :meth:`flush`,
:meth:`close` and when its records reach a size, and an event is appended to
``trace.jsonl`` only once every shard its refs name is on disk: until then it waits, and
every event after it waits behind it, in order (its ``seq`` is already fixed).
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec

from otel_rollout._bundle._capture import PayloadCapturer
from otel_rollout._bundle._files import (
    FILE_MODE,
    make_private_dir,
    make_private_dirs,
    write_whole,
)
from otel_rollout._bundle._json import encode_compact, encode_line, encode_pretty
from otel_rollout._bundle._models import (
    MANIFEST_FILE_NAME,
    RAW_EVENT_LOG_FILE_NAME,
    SCHEMA_2,
    SCHEMA_VERSION,
    SCHEMA_VERSIONS,
    PayloadKind,
    RawPayloadRef,
    RawTraceEvent,
    RawTraceEventPayload,
    TraceBundleManifest,
    payload_refs,
)
from otel_rollout._bundle._payloads import (
    DEFAULT_SEAL_BYTES,
    PayloadFileWriter,
    PayloadShardWriter,
)

logger = logging.getLogger(__name__)

_DRAFT_HEADS = {
    version: b'{"schema_version":%d,"seq":0,"wall_time_unix_ms":0' % version
    for version in SCHEMA_VERSIONS
}
"""How an event line drafted with ``seq`` and ``wall_time_unix_ms`` 0 starts, by schema."""
_LINE_HEADS = {
    version: b'{"schema_version":%d,"seq":%%d,"wall_time_unix_ms":%%d' % version
    for version in SCHEMA_VERSIONS
}


def bundle_dir_name(trace_id: str, root_thread_id: str) -> str:
    """Return Codex's directory name for a bundle: ``trace-<trace_id>-<root_thread_id>``."""
    return f"trace-{trace_id}-{root_thread_id}"


_fork_generation = 0
"""How many forks lie between the first process and this one (a cheap per-call test
that a writer belongs to this process: ``os.getpid`` is a system call)."""


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def unix_ms() -> int:
    """Return the wall clock in whole milliseconds since the epoch (0 before it)."""
    return max(time.time_ns() // 1_000_000, 0)


class BundleWriter:
    """Appends raw events and payloads to one trace bundle.

    Create one with :meth:`create`. Every method is thread-safe and never raises an
    ``OSError``: a failed write stops the writer (see :attr:`failure`) and returns
    ``None``. A process forked from the creator never writes to the bundle.
    """

    def __init__(
        self,
        bundle_dir: Path,
        manifest: TraceBundleManifest,
        log_fd: int,
        payloads: PayloadFileWriter | PayloadShardWriter,
        *,
        max_bytes: int | None = None,
        max_payload_bytes: int | None = None,
    ) -> None:
        """Wrap an open bundle; use :meth:`create` instead."""
        self.bundle_dir = bundle_dir
        self.manifest = manifest
        self.schema_version = manifest.schema_version
        self._files = payloads if isinstance(payloads, PayloadFileWriter) else None
        self._shards = payloads if isinstance(payloads, PayloadShardWriter) else None
        self._waiting: collections.deque[tuple[int, bytes]] = collections.deque()
        """Schema 3: ``(highest shard named, line)`` of each event waiting for a seal, in order."""
        self._waiting_bytes = 0
        self._manifest_bytes = 0
        self._capture: PayloadCapturer | None = None
        if self._shards is not None:
            self._capture = PayloadCapturer(
                self._shards,
                seal=self._seal_full_shard,
                used_bytes=self._used_bytes,
                max_bytes=max_bytes,
                max_payload_bytes=max_payload_bytes,
            )
        self._draft_head = _DRAFT_HEADS[self.schema_version]
        self._line_head = _LINE_HEADS[self.schema_version]
        self._log_fd: int | None = log_fd
        self._lock = threading.Lock()
        self._next_seq = 1
        self._log_size = 0
        self._pid = os.getpid()
        self._fork_generation = _fork_generation
        self.discarded = 0
        """Events given a ``seq`` that never reached ``trace.jsonl`` (waiting for a shard
        whose write failed, or in a batch of lines whose write failed)."""
        self.failure: BaseException | None = None
        """The error that stopped the writer, or ``None`` while it is healthy."""
        self.defer_io = False
        """Schema 3: set while a recording thread writes events into the bundle (the
        background writer's caller drain): nothing goes to disk then; event lines wait in
        order and a full shard waits (:attr:`seal_wanted`) for the writer thread's seal."""
        self.seal_wanted = False
        """The open shard reached its size while :attr:`defer_io` was set."""

    @classmethod
    def create(
        cls,
        root: str | os.PathLike[str],
        *,
        root_thread_id: str,
        trace_id: str | None = None,
        rollout_id: str | None = None,
        started_at_unix_ms: int | None = None,
        schema_version: int = SCHEMA_VERSION,
        seal_bytes: int = DEFAULT_SEAL_BYTES,
        max_bytes: int | None = None,
        max_payload_bytes: int | None = None,
    ) -> BundleWriter:
        """Create ``<root>/trace-<trace_id>-<root_thread_id>/`` and its manifest.

        Args:
            root: Directory holding bundles; created if missing.
            root_thread_id: Id of the rollout's root thread.
            trace_id: The bundle's trace id (a UUID); a fresh UUIDv4 by default.
            rollout_id: Defaults to ``root_thread_id``, as Codex writes it.
            started_at_unix_ms: Defaults to now.
            schema_version: 2 (payload files, Codex 0.169.0/0.170.0) or 3 (zstd
                shards, Codex 0.171.0).
            seal_bytes: Schema 3: seal the open shard once its records reach this size.
            max_bytes: Schema 3: payloads that would take the bundle past this many
                bytes are omitted (``None``: no limit).
            max_payload_bytes: Schema 3: payloads (and long strings of model items)
                past this many bytes are truncated (``None``: no limit).

        Raises:
            ValueError: ``schema_version`` is not one this package writes, or a limit is
                not positive or given for schema 2.
            OSError: The directory, manifest or event log could not be created.
        """
        if schema_version not in SCHEMA_VERSIONS:
            raise ValueError(
                f"schema_version must be one of {SCHEMA_VERSIONS}, not {schema_version!r}"
            )
        for name, limit in (("max_bytes", max_bytes), ("max_payload_bytes", max_payload_bytes)):
            if limit is not None and (schema_version == SCHEMA_2 or limit < 1):
                raise ValueError(f"{name} is a positive limit of schema 3 bundles, not {limit!r}")
        trace_id = trace_id or str(uuid.uuid4())
        manifest = TraceBundleManifest(
            schema_version=schema_version,
            trace_id=trace_id,
            rollout_id=rollout_id or root_thread_id,
            root_thread_id=root_thread_id,
            started_at_unix_ms=unix_ms() if started_at_unix_ms is None else started_at_unix_ms,
        )
        bundle_dir = Path(root) / bundle_dir_name(trace_id, root_thread_id)
        make_private_dirs(Path(root))
        make_private_dir(bundle_dir)
        payloads: PayloadFileWriter | PayloadShardWriter
        if schema_version == SCHEMA_2:
            payloads = PayloadFileWriter.create(bundle_dir)
        else:
            payloads = PayloadShardWriter.create(bundle_dir, seal_bytes=seal_bytes)
        manifest_body = encode_pretty(manifest)
        write_whole(os.fspath(bundle_dir / MANIFEST_FILE_NAME), manifest_body)
        log_fd = os.open(
            bundle_dir / RAW_EVENT_LOG_FILE_NAME,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
            FILE_MODE,
        )
        writer = cls(
            bundle_dir,
            manifest,
            log_fd,
            payloads,
            max_bytes=max_bytes,
            max_payload_bytes=max_payload_bytes,
        )
        writer._manifest_bytes = len(manifest_body)
        return writer

    @property
    def payloads(self) -> PayloadFileWriter:
        """Schema 2: numbers and writes the payload files (also used directly by the live recorder).

        Raises:
            TypeError: The bundle is schema 3 (its payloads go through :meth:`write_payload`).
        """
        if self._files is None:
            raise TypeError("a schema 3 bundle writes its payloads through write_payload()")
        return self._files

    @property
    def is_active(self) -> bool:
        """Whether the writer still accepts events (not failed, closed or forked)."""
        return (
            self._log_fd is not None
            and self.failure is None
            and self._fork_generation == _fork_generation
        )

    @property
    def events_written(self) -> int:
        """How many events reached ``trace.jsonl``."""
        return self._next_seq - 1 - len(self._waiting) - self.discarded

    def write_payload(
        self,
        kind: PayloadKind,
        value: Any,
        *,
        parts: list[RawPayloadRef] | None = None,
        thread_id: str | None = None,
        encoded: bytes | None = None,
        stored: dict[str, bytes] | None = None,
    ) -> RawPayloadRef | None:
        """Write ``value`` as the next payload and return its reference.

        Schema 2: a payload file, complete (written to a temporary name, then renamed)
        before this returns, so an event appended afterwards never refers to a partial
        file. Schema 3: a record (compact JSON) of the open shard, with ``parts`` (refs
        written before) if given, cut by the size limits (``_capture``; an inference
        request's model items are shared within ``thread_id``); an event naming it
        waits until the shard is sealed.
        Schema 3 only: ``encoded`` is ``value``'s compact JSON when the caller has it
        (``value`` is then needed only for an inference request), and ``stored``, if
        given, receives the body of every record written, by payload id.
        Returns ``None`` when the writer is stopped, the write fails (which stops the
        writer) or ``value`` is not JSON-serializable (logged, the writer carries on).
        """
        capture = self._capture
        if capture is not None:
            try:
                body = encode_compact(value) if encoded is None else encoded
            except (TypeError, ValueError, OverflowError) as error:
                logger.warning(
                    "rollout trace: payload of kind %s is not JSON: %s", kind.value, error
                )
                return None
            with self._lock:
                if not self.is_active:
                    return None
                shards = capture.shards
                shards.stored = stored
                try:
                    if parts is not None or capture.max_payload_bytes is None:
                        ref = capture.record(kind, body, parts)  # (no cut to make)
                    else:
                        ref = capture.payload(kind, body, value, thread_id)
                finally:
                    shards.stored = None
                return ref if self.failure is None else None
        if not self.is_active:
            return None
        try:
            body = encode_pretty(value)
        except (TypeError, ValueError, OverflowError) as error:
            logger.warning("rollout trace: payload of kind %s is not JSON: %s", kind.value, error)
            return None
        assert self._files is not None
        with self._lock:
            if not self.is_active:
                return None
            ref = self._files.new_ref(kind)
        try:
            self._files.write(ref, body)
        except OSError as error:
            with self._lock:
                self._stop(error)
            return None
        return ref

    def write_prepared_prompt(
        self,
        thread_id: str | None,
        prompt: dict[str, Any],
        *,
        stored: dict[str, bytes] | None = None,
    ) -> RawPayloadRef | None:
        """Schema 3: write ``prompt`` as a ``prepared_prompt`` payload and return its ref.

        Each of ``prompt["input"]``'s items becomes a ``model_item`` part, written once
        per thread (an item already written for ``thread_id`` reuses its ref); the
        payload is the array of string fragments around them (``_capture``). Returns
        ``None`` as :meth:`write_payload` does; ``stored`` as there.

        Raises:
            TypeError: The bundle is schema 2.
        """
        if self._capture is None:
            raise TypeError("prepared prompts exist in schema 3 only")
        capture = self._capture
        with self._lock:
            if not self.is_active:
                return None
            capture.shards.stored = stored
            try:
                ref = capture.prepared_prompt(prompt, thread_id)
            except (TypeError, ValueError, OverflowError) as error:
                logger.warning("rollout trace: prepared prompt is not JSON: %s", error)
                return None
            finally:
                capture.shards.stored = None
            return ref if self.failure is None else None

    def write_omitted(self, kind: PayloadKind, original_bytes: int) -> RawPayloadRef | None:
        """Schema 3: number the next payload and return its ref, left out (``capture:
        omitted``, ``original_bytes`` long): the drop policy's way to keep its event.
        ``None`` when the writer is stopped.

        Raises:
            TypeError: The bundle is schema 2.
        """
        if self._capture is None or self._shards is None:
            raise TypeError("only schema 3 can say a payload was left out")
        with self._lock:
            if not self.is_active:
                return None
            self._capture.partial = True
            return self._shards.omitted(self._shards.new_id(), kind, original_bytes)

    @property
    def last_shard(self) -> int:
        """Schema 3: the highest shard number any payload ref given so far names."""
        return 0 if self._shards is None else self._shards.last_shard

    @property
    def can_defer_io(self) -> bool:
        """Schema 3 without size limits: events may be written with :attr:`defer_io` set
        (a limit seals at once when it cuts a payload)."""
        capture = self._capture
        return (
            capture is not None and capture.max_bytes is None and capture.max_payload_bytes is None
        )

    @property
    def cuts_payloads(self) -> bool:
        """Schema 3 with ``max_payload_bytes``: payloads and model items may be cut."""
        return self._capture is not None and self._capture.max_payload_bytes is not None

    @property
    def partial_payloads(self) -> bool:
        """Schema 3: whether a size limit truncated or omitted a payload."""
        return self._capture is not None and self._capture.partial

    def append(
        self,
        payload: RawTraceEventPayload,
        *,
        thread_id: str | None = None,
        codex_turn_id: str | None = None,
        wall_time_unix_ms: int | None = None,
    ) -> RawTraceEvent | None:
        """Append one event to ``trace.jsonl`` and return it as written.

        The line is encoded before the lock is taken; under the lock only its ``seq``
        and wall time (now, unless given) are spliced in, so both follow the file
        order, and the line is written with one ``write`` on an ``O_APPEND``
        descriptor. Returns ``None`` when the writer is stopped or the write fails
        (which stops the writer); a failed append consumes no ``seq`` and leaves no
        partial line behind. An event that cannot be encoded is refused (logged,
        ``None``) without stopping the writer. Schema 3: an event naming a shard not
        yet sealed (or behind one that does) waits, with its ``seq``, for
        :meth:`flush` or the seal that makes it ready.
        """
        if not self.is_active:
            return None
        draft = self._draft(payload, thread_id, codex_turn_id)
        needs = 0 if self._shards is None else _highest_shard(payload)
        placed = self._append_draft(draft, needs, wall_time_unix_ms)
        if placed is None:
            return None
        seq, wall_time = placed
        return msgspec.structs.replace(draft, seq=seq, wall_time_unix_ms=wall_time)

    def append_event(
        self,
        payload: RawTraceEventPayload,
        *,
        thread_id: str | None,
        codex_turn_id: str | None,
        wall_time_unix_ms: int,
        highest_shard: int,
    ) -> bool:
        """:meth:`append` for the background writer, which knows the highest shard the
        event's refs name (``highest_shard``; 0 for none) and needs no event back.
        Returns whether the event was accepted (written, or waiting for its shard).

        One thread calls it for a bundle, so the line is encoded whole under the lock
        (``seq`` known): no draft to splice."""
        with self._lock:
            if (
                self._log_fd is None
                or self.failure is not None
                or self._fork_generation != _fork_generation
            ):
                return False
            seq = self._next_seq
            try:
                line = (
                    encode_compact(
                        RawTraceEvent(
                            schema_version=self.schema_version,
                            seq=seq,
                            wall_time_unix_ms=wall_time_unix_ms,
                            rollout_id=self.manifest.rollout_id,
                            thread_id=thread_id,
                            codex_turn_id=codex_turn_id,
                            payload=payload,
                        )
                    )
                    + b"\n"  # a short line: cheaper than encode_line's buffer
                )
            except (TypeError, ValueError, OverflowError) as error:
                logger.warning(
                    "rollout trace: event %s is not JSON: %s", type(payload).__name__, error
                )
                return False
            if self._shards is not None and (
                self._waiting or highest_shard > self._shards.sealed_through or self.defer_io
            ):
                self._waiting.append((highest_shard, line))
                self._waiting_bytes += len(line)
            elif not self._write_line(line):
                return False
            self._next_seq = seq + 1
        return True

    def _draft(
        self, payload: RawTraceEventPayload, thread_id: str | None, codex_turn_id: str | None
    ) -> RawTraceEvent:
        return RawTraceEvent(
            schema_version=self.schema_version,
            seq=0,
            wall_time_unix_ms=0,
            rollout_id=self.manifest.rollout_id,
            thread_id=thread_id,
            codex_turn_id=codex_turn_id,
            payload=payload,
        )

    def _append_draft(
        self, draft: RawTraceEvent, needs: int, wall_time_unix_ms: int | None
    ) -> tuple[int, int] | None:
        """Encode ``draft``, splice in its ``seq`` and wall time under the lock, and write
        it (or queue it behind shard ``needs``); ``(seq, wall time)``, or ``None``."""
        try:
            encoded = encode_line(draft)
        except (TypeError, ValueError, OverflowError) as error:
            logger.warning(
                "rollout trace: event %s is not JSON: %s", type(draft.payload).__name__, error
            )
            return None
        tail = memoryview(encoded)[len(self._draft_head) :]
        with self._lock:
            if not self.is_active:
                return None
            seq = self._next_seq
            wall_time = unix_ms() if wall_time_unix_ms is None else wall_time_unix_ms
            line = self._line_head % (seq, wall_time) + tail
            if self._shards is not None and (self._waiting or needs > self._shards.sealed_through):
                self._waiting.append((needs, line))
                self._waiting_bytes += len(line)
                self._next_seq = seq + 1
            elif not self._write_line(line):
                return None
            else:
                self._next_seq = seq + 1
        return seq, wall_time

    def flush(self) -> bool:
        """Schema 3: seal the open shard and append every waiting event. A no-op for schema 2.

        Returns whether the writer is still healthy.
        """
        if self._shards is None:
            return self.failure is None
        with self._lock:
            if self.is_active:
                self._seal()
            return self.failure is None

    def close(self) -> None:
        """Flush, then close the event log and the payloads directory; later calls are no-ops.

        Idempotent.
        """
        self.flush()
        with self._lock:
            fd, self._log_fd = self._log_fd, None
        if fd is not None and self._pid == os.getpid():
            if self._files is not None:
                self._files.close()
            if self._shards is not None:
                self._shards.close()
            try:
                os.close(fd)
            except OSError as error:
                logger.warning("rollout trace: closing %s failed: %s", self.bundle_dir, error)

    def __enter__(self) -> BundleWriter:
        """Use the writer as a context manager that closes it on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the writer."""
        self.close()

    def _used_bytes(self) -> int:
        """Schema 3: the bundle's bytes outside payload records: manifest, events (lock held)."""
        return self._manifest_bytes + self._log_size + self._waiting_bytes

    def _seal_full_shard(self) -> None:
        """The capturer's seal (a shard at its size, or a limit): now, or by the writer
        thread when :attr:`defer_io` is set (lock held)."""
        if self.defer_io:
            self.seal_wanted = True
        else:
            self._seal()

    def _seal(self) -> None:
        """Schema 3: seal the open shard, then append the events now ready (lock held)."""
        shards = self._shards
        assert shards is not None
        if self.failure is not None:
            return
        self.seal_wanted = False
        try:
            shards.seal()
        except OSError as error:
            self._stop(error)
            return
        ready = shards.sealed_through
        waiting = self._waiting
        lines: list[bytes] = []
        while waiting and waiting[0][0] <= ready:
            lines.append(waiting.popleft()[1])
        if lines:
            block = b"".join(lines)
            self._waiting_bytes -= len(block)
            if not self._write_line(block, len(lines)):
                return

    def _write_line(self, line: bytes, accepted: int = 0) -> bool:
        """Write whole event lines with one ``write``; on failure cut the log back to its
        last whole line and stop; ``accepted``: how many of the lines were events already
        accepted (waiting for their shard), now discarded (lock held)."""
        assert self._log_fd is not None
        try:
            _write_all(self._log_fd, line)
        except OSError as error:
            self._undo_partial_line()
            self.discarded += accepted
            self._stop(error)
            return False
        self._log_size += len(line)
        return True

    def _undo_partial_line(self) -> None:
        """Cut the event log back to its last whole line after a failed write (lock held)."""
        if self._log_fd is None:
            return
        try:
            os.ftruncate(self._log_fd, self._log_size)
        except OSError:
            pass  # the reader ignores a torn last line anyway

    def _stop(self, error: BaseException) -> None:
        """Record the first failure and warn once (lock held)."""
        if self.failure is None:
            self.failure = error
            logger.warning(
                "rollout trace: writing bundle %s failed, recording stopped "
                "(the bundle is valid up to event %d): %s",
                self.bundle_dir,
                self.events_written,
                error,
            )
            self.discarded += len(self._waiting)
            self._waiting.clear()
            self._waiting_bytes = 0


def _highest_shard(payload: RawTraceEventPayload) -> int:
    """The highest shard number any payload ref of ``payload`` (or its parts) names; 0 if none."""
    highest = 0
    stack = payload_refs(payload)
    while stack:
        ref = stack.pop()
        if isinstance(ref.shard, int) and ref.shard > highest:
            highest = ref.shard
        if isinstance(ref.parts, list):
            stack.extend(ref.parts)
    return highest


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd``."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
