"""The bundle writer: Codex's on-disk layout, safe across OS threads, stops on failure.

One writer serves a whole rollout (the root thread and every child thread). ``seq``
starts at 1 and is consumed only by an append that reached the disk, so a bundle
never has a gap. Each payload file is written to a temporary name and renamed, so it
is whole or absent, and it exists before the event that refers to it is appended
(the payload store, ``_payloads``, numbers and writes them).
The first I/O failure stops the writer: the bundle stays valid up to that point, the
failure is logged once, and every later call is a cheap no-op.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec

from otel_rollout._bundle._files import FILE_MODE, make_private_dir, write_whole
from otel_rollout._bundle._json import encode_line, encode_pretty
from otel_rollout._bundle._models import (
    MANIFEST_FILE_NAME,
    RAW_EVENT_LOG_FILE_NAME,
    SCHEMA_VERSION,
    PayloadKind,
    RawPayloadRef,
    RawTraceEvent,
    RawTraceEventPayload,
    TraceBundleManifest,
)
from otel_rollout._bundle._payloads import PayloadFileWriter

logger = logging.getLogger(__name__)

_DRAFT_HEAD = b'{"schema_version":%d,"seq":0,"wall_time_unix_ms":0' % SCHEMA_VERSION
"""How an event line drafted with ``seq`` and ``wall_time_unix_ms`` 0 starts."""
_LINE_HEAD = b'{"schema_version":%d,"seq":%%d,"wall_time_unix_ms":%%d' % SCHEMA_VERSION


def bundle_dir_name(trace_id: str, root_thread_id: str) -> str:
    """Return Codex's directory name for a bundle: ``trace-<trace_id>-<root_thread_id>``."""
    return f"trace-{trace_id}-{root_thread_id}"


def unix_ms() -> int:
    """Return the wall clock in whole milliseconds since the epoch (0 before it)."""
    return max(time.time_ns() // 1_000_000, 0)


class BundleWriter:
    """Appends raw events and payload files to one trace bundle.

    Create one with :meth:`create`. Every method is thread-safe and never raises an
    ``OSError``: a failed write stops the writer (see :attr:`failure`) and returns
    ``None``. A process forked from the creator never writes to the bundle.
    """

    def __init__(
        self,
        bundle_dir: Path,
        manifest: TraceBundleManifest,
        log_fd: int,
        payloads: PayloadFileWriter,
    ) -> None:
        """Wrap an open bundle; use :meth:`create` instead."""
        self.bundle_dir = bundle_dir
        self.manifest = manifest
        self.payloads = payloads
        """Numbers and writes the payload files (also used directly by the live recorder)."""
        self._log_fd: int | None = log_fd
        self._lock = threading.Lock()
        self._next_seq = 1
        self._log_size = 0
        self._pid = os.getpid()
        self.failure: BaseException | None = None
        """The error that stopped the writer, or ``None`` while it is healthy."""

    @classmethod
    def create(
        cls,
        root: str | os.PathLike[str],
        *,
        root_thread_id: str,
        trace_id: str | None = None,
        rollout_id: str | None = None,
        started_at_unix_ms: int | None = None,
    ) -> BundleWriter:
        """Create ``<root>/trace-<trace_id>-<root_thread_id>/`` and its manifest.

        Args:
            root: Directory holding bundles; created if missing.
            root_thread_id: Id of the rollout's root thread.
            trace_id: The bundle's trace id (a UUID); a fresh UUIDv4 by default.
            rollout_id: Defaults to ``root_thread_id``, as Codex writes it.
            started_at_unix_ms: Defaults to now.

        Raises:
            OSError: The directory, manifest or event log could not be created.
        """
        trace_id = trace_id or str(uuid.uuid4())
        manifest = TraceBundleManifest(
            schema_version=SCHEMA_VERSION,
            trace_id=trace_id,
            rollout_id=rollout_id or root_thread_id,
            root_thread_id=root_thread_id,
            started_at_unix_ms=unix_ms() if started_at_unix_ms is None else started_at_unix_ms,
        )
        bundle_dir = Path(root) / bundle_dir_name(trace_id, root_thread_id)
        Path(root).mkdir(parents=True, exist_ok=True)
        make_private_dir(bundle_dir)
        payloads = PayloadFileWriter.create(bundle_dir)
        write_whole(os.fspath(bundle_dir / MANIFEST_FILE_NAME), encode_pretty(manifest))
        log_fd = os.open(
            bundle_dir / RAW_EVENT_LOG_FILE_NAME,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
            FILE_MODE,
        )
        return cls(bundle_dir, manifest, log_fd, payloads)

    @property
    def is_active(self) -> bool:
        """Whether the writer still accepts events (not failed, closed or forked)."""
        return self._log_fd is not None and self.failure is None and self._pid == os.getpid()

    @property
    def events_written(self) -> int:
        """How many events reached ``trace.jsonl``."""
        return self._next_seq - 1

    def write_payload(self, kind: PayloadKind, value: Any) -> RawPayloadRef | None:
        """Write ``value`` as the next payload file and return its reference.

        The file is complete (written to a temporary name, then renamed) before this
        returns, so an event appended afterwards never refers to a partial file.
        Returns ``None`` when the writer is stopped, the write fails (which stops the
        writer) or ``value`` is not JSON-serializable (logged, the writer carries on).
        """
        if not self.is_active:
            return None
        try:
            body = encode_pretty(value)
        except (TypeError, ValueError, OverflowError) as error:
            logger.warning("rollout trace: payload of kind %s is not JSON: %s", kind.value, error)
            return None
        with self._lock:
            if not self.is_active:
                return None
            ref = self.payloads.new_ref(kind)
        try:
            self.payloads.write(ref, body)
        except OSError as error:
            with self._lock:
                self._stop(error)
            return None
        return ref

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
        ``None``) without stopping the writer.
        """
        if not self.is_active:
            return None
        draft = RawTraceEvent(
            schema_version=SCHEMA_VERSION,
            seq=0,
            wall_time_unix_ms=0,
            rollout_id=self.manifest.rollout_id,
            thread_id=thread_id,
            codex_turn_id=codex_turn_id,
            payload=payload,
        )
        try:
            encoded = encode_line(draft)
        except (TypeError, ValueError, OverflowError) as error:
            logger.warning("rollout trace: event %s is not JSON: %s", type(payload).__name__, error)
            return None
        tail = memoryview(encoded)[len(_DRAFT_HEAD) :]
        with self._lock:
            if not self.is_active:
                return None
            seq = self._next_seq
            wall_time = unix_ms() if wall_time_unix_ms is None else wall_time_unix_ms
            line = _LINE_HEAD % (seq, wall_time) + tail
            assert self._log_fd is not None
            try:
                _write_all(self._log_fd, line)
            except OSError as error:
                self._undo_partial_line()
                self._stop(error)
                return None
            self._log_size += len(line)
            self._next_seq = seq + 1
        return msgspec.structs.replace(draft, seq=seq, wall_time_unix_ms=wall_time)

    def close(self) -> None:
        """Close the event log and the payloads directory; later calls are no-ops. Idempotent."""
        with self._lock:
            fd, self._log_fd = self._log_fd, None
        if fd is not None and self._pid == os.getpid():
            self.payloads.close()
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
                self._next_seq - 1,
                error,
            )


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd``."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
