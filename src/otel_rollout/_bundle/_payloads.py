"""The payload store: where payload bodies live in a bundle, how refs name them, reading, writing.

Codex 0.169.0 (schema 2) writes each payload as ``payloads/<n>.json`` (pretty JSON), named
by ``raw_payload:<n>``; Codex 0.171.0 (schema 3) packs them as records in zstd shards
``payloads/NNNNNN.zst`` (:mod:`._shards`). This module is the only code that knows these
layouts or opens files under ``payloads/``: :class:`PayloadStore` reads
(:class:`PayloadFiles`, :class:`PayloadShards`, chosen by :func:`open_payload_store`) and
:class:`PayloadFileWriter` (schema 2) and :class:`PayloadShardWriter` (schema 3) number
payloads (the only places refs are built) and write them.

Reads are confined to the bundle: a path that is empty, absolute, climbs with ``..``
or resolves (through a symlink) to outside the bundle is refused. The reasons are part
of the reducer's errors (``docs/reducer-errors.md``): keep their text.
"""

from __future__ import annotations

import abc
import itertools
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import msgspec

from otel_rollout._bundle._bounded import (
    SERDE_DEPTH_LIMIT,
    ReadRefused,
    nested_too_deep,
    open_regular,
    read_cap,
    read_fd,
    read_regular,
)
from otel_rollout._bundle._files import close_quietly, make_private_dir, open_dir, write_whole
from otel_rollout._bundle._models import (
    PAYLOADS_DIR_NAME,
    SCHEMA_2,
    CaptureStatus,
    PayloadCapture,
    PayloadKind,
    RawPayloadKind,
    RawPayloadRef,
)
from otel_rollout._bundle._shards import (
    DEFAULT_MAX_SHARD_BYTES,
    ShardError,
    decompress_shard,
    iter_records,
    put_record,
    shard_compressor,
    shard_name,
)

PAYLOAD_KINDS: Final[Mapping[PayloadKind, RawPayloadKind]] = {
    kind: RawPayloadKind(type=kind) for kind in PayloadKind
}
"""One ``{"type": <kind>}`` object per kind, shared by every ref."""
_ID_PREFIX: Final = "raw_payload:"
_PREFIX: Final = f"{PAYLOADS_DIR_NAME}/"
_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_QUICK_READS: Final = hasattr(os, "O_NOFOLLOW")
"""Without ``O_NOFOLLOW`` every read resolves its path (the thorough way)."""
_TOO_DEEP: Final = object()


class PayloadStore(abc.ABC):
    """A bundle's payload bodies, read confined to the bundle; one subclass per layout.

    A payload is named by its ref or, in a layout of one file per payload, by the
    ref's ``path`` alone.
    """

    @abc.abstractmethod
    def read(self, ref: RawPayloadRef | str) -> bytes:
        """A payload's bytes.

        Raises:
            ValueError: With a reason fit for a user: the payload is missing,
                unreadable or outside the bundle.
        """

    @abc.abstractmethod
    def describe(self, ref: RawPayloadRef | str) -> str:
        """How errors name payload ``ref`` in this layout (a file, or a record)."""

    def decode(
        self,
        ref: RawPayloadRef | str,
        data: bytes,
        decoder: msgspec.json.Decoder[Any] | None = None,
    ) -> Any:
        """Decode the bytes of payload ``ref`` as JSON (with ``decoder`` if given).

        Raises:
            ValueError: The bytes are not JSON (or do not fit ``decoder``'s type).
        """
        try:
            value = msgspec.json.decode(data) if decoder is None else decoder.decode(data)
        except msgspec.DecodeError as error:
            raise ValueError(f"{self.describe(ref)} is not JSON: {error}") from None
        except RecursionError:
            value = _TOO_DEEP
        if value is _TOO_DEEP or nested_too_deep(data):
            raise ValueError(
                f"{self.describe(ref)} is not JSON: recursion limit exceeded (nested "
                f"{SERDE_DEPTH_LIMIT} levels or more, as serde_json refuses)"
            )
        return value

    def read_json(
        self, ref: RawPayloadRef | str, decoder: msgspec.json.Decoder[Any] | None = None
    ) -> Any:
        """Read a payload and decode it as JSON (with ``decoder`` if given).

        Raises:
            ValueError: As :meth:`read` and :meth:`decode`.
        """
        return self.decode(ref, self.read(ref), decoder)


def open_payload_store(
    bundle_dir: str | os.PathLike[str], schema_version: int = SCHEMA_2
) -> PayloadStore:
    """The payload store of the bundle at ``bundle_dir``, by its manifest's schema.

    Schema 2 keeps one file per payload; schema 3 (and anything later) zstd shards.
    """
    if schema_version == SCHEMA_2:
        return PayloadFiles(bundle_dir)
    return PayloadShards(bundle_dir)


def _path_of(ref: RawPayloadRef | str) -> str:
    if isinstance(ref, str):
        return ref
    path = ref.path
    return path if isinstance(path, str) else ""


class PayloadFiles(PayloadStore):
    """One JSON file per payload, at the bundle-relative path its ref names (``payloads/<n>.json``).

    The real path of each directory is resolved once; a file is opened without following
    a symlink, and only a symlink (or anything unusual) is resolved the thorough way, by
    :meth:`path`.
    """

    def __init__(self, bundle_dir: str | os.PathLike[str]) -> None:
        """Read the payloads of the bundle at ``bundle_dir``; nothing is read yet."""
        self._bundle_dir = Path(bundle_dir)
        self._bundle_text = os.fspath(bundle_dir)
        self._root = self._bundle_dir.resolve()
        self._root_text = os.fspath(self._root)
        self._root_prefix = os.path.join(self._root_text, "")
        self._real_dirs: dict[str, str] = {}
        """Directory as a ref names it -> its real path (inside the bundle)."""
        self._cap = read_cap()
        """The most bytes read from one file (``OTEL_ROLLOUT_MAX_READ_BYTES``)."""

    def path(self, ref: RawPayloadRef | str) -> Path:
        """Resolve a payload reference to a path inside the bundle.

        Raises:
            ValueError: The path is empty, absolute, uses ``..`` or leads out of the
                bundle (through a symlink).
        """
        relative = _path_of(ref)
        if not relative or "\0" in relative:
            raise ValueError(f"payload path {relative!r} is not a file path")
        if os.path.isabs(relative) or relative.startswith(("/", "\\")):
            raise ValueError(f"payload path {relative!r} is absolute")
        if ".." in relative.replace("\\", "/").split("/"):
            raise ValueError(f"payload path {relative!r} leaves the bundle (..)")
        candidate = self._bundle_dir / relative
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop
            raise ValueError(f"payload path {relative!r} cannot be resolved: {error}") from None
        if self._root not in resolved.parents:
            if resolved == self._root:
                raise ValueError(f"payload path {relative!r} is not a file path")
            raise ValueError(f"payload path {relative!r} leads out of the bundle")
        return candidate

    def read(self, ref: RawPayloadRef | str) -> bytes:
        """Read a payload file's bytes, confined to the bundle.

        Raises:
            ValueError: The path escapes the bundle, or the file is missing or unreadable.
        """
        return self.read_file(_path_of(ref))

    def read_file(self, relative: str, what: str = "payload file") -> bytes:
        """Read the file at bundle-relative path ``relative``, confined to the bundle.

        ``what`` names the file in the reasons (``<what> '<path>' is missing``).

        Raises:
            ValueError: The path escapes the bundle, or the file is missing or unreadable.
        """
        if relative.endswith("/") and relative.strip("/"):
            # pathlib would drop the slash; the OS (and Codex) says ENOTDIR for a file
            if self.path(relative).is_file():  # an escaping path is refused first
                raise ValueError(f"{what} {relative!r} cannot be read: Not a directory")
            return self._read_resolved(relative, what)
        directory, _, name = relative.rpartition("/")
        if (
            _QUICK_READS
            and name
            and name != "."
            and name != ".."
            and relative[0] != "/"
            and "\\" not in relative
            and "\0" not in relative
        ):
            real_dir = self._real_dirs.get(directory)
            if real_dir is None:
                real_dir = self._real_dir(directory)
            if real_dir is not None:
                try:
                    fd = open_regular(f"{real_dir}/{name}", flags=_NOFOLLOW)
                except FileNotFoundError:
                    raise ValueError(f"{what} {relative!r} is missing") from None
                except ReadRefused as refused:
                    raise ValueError(f"{what} {relative!r}: {refused}") from None
                except OSError:
                    pass  # a symlink (or something odd): resolve it below
                else:
                    try:
                        return read_fd(fd, self._cap)
                    except ReadRefused as refused:
                        raise ValueError(f"{what} {relative!r}: {refused}") from None
                    except OSError:
                        pass  # below gives the reason
        return self._read_resolved(relative, what)

    def describe(self, ref: RawPayloadRef | str) -> str:
        """``payload file '<path>'``."""
        return f"payload file {_path_of(ref)!r}"

    def _real_dir(self, directory: str) -> str | None:
        """The real path of ``directory`` (cached) if it stays inside the bundle, else ``None``."""
        if ".." in directory.split("/"):
            return None
        real = os.path.realpath(os.path.join(self._bundle_text, directory))
        if real != self._root_text and not real.startswith(self._root_prefix):
            return None
        self._real_dirs[directory] = real
        return real

    def _read_resolved(self, relative: str, what: str = "payload file") -> bytes:
        """Read a file the thorough way: resolve its path (:meth:`path`)."""
        path = self.path(relative)
        try:
            return read_regular(path, self._cap)
        except FileNotFoundError:
            raise ValueError(f"{what} {relative!r} is missing") from None
        except ReadRefused as refused:
            raise ValueError(f"{what} {relative!r}: {refused}") from None
        except OSError as error:
            reason = f"{what} {relative!r} cannot be read: {error.strerror}"
            raise ValueError(reason) from None


class PayloadShards(PayloadStore):
    """Schema 3: payloads as records of zstd shards ``payloads/NNNNNN.zst``, named by ref.

    A shard is read (confined, as :class:`PayloadFiles` reads a file), decompressed
    within ``max_shard_bytes`` and indexed once; the decompressed shards kept stay
    under ``max_cached_bytes`` (least recently used first out).
    """

    def __init__(
        self,
        bundle_dir: str | os.PathLike[str],
        *,
        max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
        max_cached_bytes: int = 32 << 20,
    ) -> None:
        """Read the shards of the bundle at ``bundle_dir``; nothing is read yet."""
        self._files = PayloadFiles(bundle_dir)
        self._max_shard_bytes = max_shard_bytes
        self._max_cached_bytes = max_cached_bytes
        self._cache: dict[int, tuple[bytes, dict[str, tuple[int, int]]]] = {}
        """shard -> (decompressed data, id -> (offset, length)), oldest first."""
        self._cached_bytes = 0
        self._failures: dict[int, str] = {}
        """shard -> why it cannot be read (kept, so a broken shard is read once)."""
        self._frame_sizes: dict[int, int] = {}
        """shard -> bytes of its file."""

    def read(self, ref: RawPayloadRef | str) -> bytes:
        """The body of payload ``ref`` (a truncated capture's retained prefix).

        Raises:
            ValueError: With 0.171.0's reason where it has one: the ref names no shard
                (``payload omitted by size limit``), its shard is missing, unreadable or
                not one whole zstd frame, a record runs past the end (``partial record in
                sealed shard``), an id is twice in the shard (``duplicate payload``), the
                record is not there (``missing payload``), or a truncated capture's
                ``retained_bytes`` is not the record's length and less than
                ``original_bytes`` (``invalid retained length``).
        """
        if isinstance(ref, str):
            raise ValueError(f"payload {ref!r}: schema 3 payloads are named by ref, not path")
        shard = ref.shard
        payload_id = ref.raw_payload_id
        if not isinstance(shard, int):
            raise ValueError(f"payload {payload_id}: payload omitted by size limit")
        data, index = self._shard(shard)
        where = index.get(payload_id)
        if where is None:
            raise ValueError(f"missing payload {payload_id} in shard {shard}")
        offset, length = where
        capture = ref.capture
        if not isinstance(capture, msgspec.UnsetType) and capture.status is CaptureStatus.TRUNCATED:
            retained = capture.retained_bytes
            if retained != length or length >= capture.original_bytes:
                raise ValueError(
                    f"payload {payload_id}: invalid retained length (the record holds {length} "
                    f"bytes, the capture says {retained} of {capture.original_bytes})"
                )
        return data[offset : offset + length]

    def describe(self, ref: RawPayloadRef | str) -> str:
        """``payload raw_payload:<n>``."""
        return f"payload {ref if isinstance(ref, str) else ref.raw_payload_id}"

    @property
    def frame_bytes(self) -> int:
        """Bytes on disk of the distinct shards read so far (compressed)."""
        return sum(self._frame_sizes.values())

    def _shard(self, shard: int) -> tuple[bytes, dict[str, tuple[int, int]]]:
        """Shard ``shard``, decompressed and indexed (from the cache if there).

        Raises:
            ValueError: The shard cannot be read or indexed (the reason is kept: a
                broken shard is read once, however many refs name it).
        """
        cached = self._cache.pop(shard, None)
        if cached is None:
            failure = self._failures.get(shard)
            if failure is not None:
                raise ValueError(failure)
            try:
                cached = self._load(shard)
            except ValueError as error:
                self._failures[shard] = str(error)
                raise
            self._cached_bytes += len(cached[0])
            while self._cache and self._cached_bytes > self._max_cached_bytes:
                oldest = next(iter(self._cache))
                self._cached_bytes -= len(self._cache.pop(oldest)[0])
        self._cache[shard] = cached  # most recently used last
        return cached

    def _load(self, shard: int) -> tuple[bytes, dict[str, tuple[int, int]]]:
        """Read, decompress (bounded) and index shard ``shard``."""
        name = f"{_PREFIX}{shard_name(shard)}"
        frame = self._files.read_file(name, "payload shard")
        self._frame_sizes[shard] = len(frame)
        try:
            data = decompress_shard(frame, self._max_shard_bytes)
        except ShardError as error:
            raise ValueError(f"decompress shard {name!r}: {error}") from None
        index: dict[str, tuple[int, int]] = {}
        try:
            for ident, offset, length in iter_records(data):
                if index.setdefault(ident, (offset, length))[0] != offset:
                    raise ValueError(f"duplicate payload {ident} in shard {shard}")
        except ShardError as error:
            raise ValueError(f"partial record in sealed shard {shard}: {error}") from None
        return data, index


class PayloadFileWriter:
    """Numbers one bundle's payloads and writes each as ``payloads/<n>.json``, whole or absent.

    :meth:`new_ref` hands out refs in order; :meth:`write` writes a body under its ref's
    name through a temporary file (owner-only, see ``_files``), in the directory's open
    descriptor, so a file costs four system calls and is complete before :meth:`write`
    returns. Both are thread-safe, and writes on several threads run at once.
    """

    def __init__(self, directory: Path) -> None:
        """Write into the existing ``payloads`` directory ``directory``; use :meth:`create`."""
        self.directory = directory
        self._ordinals = itertools.count(1)
        self._lock = threading.Lock()
        self._dir_fd: int | None = None
        """The directory, opened by the first write, closed by :meth:`close`."""
        self._writing = 0
        self._closed = False

    @classmethod
    def create(cls, bundle_dir: Path) -> PayloadFileWriter:
        """Create the bundle's ``payloads`` directory (owner-only) and a writer for it.

        Raises:
            OSError: The directory could not be created.
        """
        directory = bundle_dir / PAYLOADS_DIR_NAME
        make_private_dir(directory)
        return cls(directory)

    def new_ref(self, kind: PayloadKind) -> RawPayloadRef:
        """Number the next payload and return its ref: ``raw_payload:<n>`` in ``payloads/<n>.json``.

        ``n`` counts from 1, in the order of the calls (thread-safe), as Codex numbers them.
        """
        n = str(next(self._ordinals))  # on the recording thread: kept to the bare minimum
        return RawPayloadRef(
            raw_payload_id=_ID_PREFIX + n, kind=PAYLOAD_KINDS[kind], path=_PREFIX + n + ".json"
        )

    def write(self, ref: RawPayloadRef, body: bytes) -> None:
        """Write ``body`` (the file's bytes: Codex's pretty JSON) as the file of ``ref``.

        ``ref`` comes from :meth:`new_ref`. After :meth:`close`, the file is written by
        its path.

        Raises:
            OSError: The file could not be written; nothing is left under its name.
        """
        name = _path_of(ref).removeprefix(_PREFIX)
        with self._lock:
            if self._closed:
                dir_fd = None
            else:
                dir_fd = self._dir_fd
                if dir_fd is None:
                    dir_fd = self._dir_fd = open_dir(self.directory)
                self._writing += 1
        if dir_fd is None:
            write_whole(os.path.join(self.directory, name), body)
            return
        try:
            write_whole(name, body, dir_fd=dir_fd)
        finally:
            with self._lock:
                self._writing -= 1
                if self._closed and not self._writing:
                    self._release()

    def close(self) -> None:
        """Close the directory once no write is using it. Idempotent."""
        with self._lock:
            self._closed = True
            if not self._writing:
                self._release()

    def _release(self) -> None:
        """Close the directory's descriptor (lock held)."""
        fd, self._dir_fd = self._dir_fd, None
        close_quietly(fd)


PLACEHOLDER_REFS: Final[tuple[RawPayloadRef, ...]] = tuple(
    RawPayloadRef(raw_payload_id=f"pending:{index}", kind=PAYLOAD_KINDS[PayloadKind.PROTOCOL_EVENT])
    for index in range(8)
)
"""Schema 3 live recording: stand-ins for an event's payload refs (the ``i``-th payload's
is the ``i``-th) while it is queued; the writer thread writes the payloads and swaps the
stand-ins, by identity, for the refs :class:`PayloadShardWriter` gives (which name the
shard, known only there)."""

DEFAULT_SEAL_BYTES: Final = 4 << 20
"""Records (uncompressed) after which the open shard is sealed: 4 MiB, a frame that
compresses in a few milliseconds and keeps a reader's memory small."""


class PayloadShardWriter:
    """Numbers one bundle's payloads (schema 3) and packs them as records into zstd shards.

    Records go into the open shard (numbered from 1); :meth:`seal` writes it as
    ``payloads/NNNNNN.zst``, one frame with checksum and content size, whole or absent
    (temporary file, rename, owner-only), and opens the next. A ref names the shard its
    record went into, so an event referring to it may be appended once
    :attr:`sealed_through` reaches that number. Not thread-safe: the bundle writer's
    lock serializes every call.
    """

    def __init__(self, directory: Path, *, seal_bytes: int = DEFAULT_SEAL_BYTES) -> None:
        """Write into the existing ``payloads`` directory ``directory``; use :meth:`create`."""
        self.directory = directory
        self.seal_bytes = seal_bytes
        """Seal the open shard once its records reach this many bytes."""
        self._ordinals = itertools.count(1)
        self._records = bytearray()
        """The open shard's records, one after the other (compressed in one call), in its
        first :attr:`_used` bytes: a buffer reused from shard to shard, so sealing does not
        make the next shard allocate (and fault in) fresh memory as it fills."""
        self._used = 0
        self._compressor = shard_compressor()
        self.sealed_through = 0
        """The highest shard number on disk (0 before the first seal)."""
        self.stored: dict[str, bytes] | None = None
        """When set, :meth:`add` puts each record's body there by payload id (the live
        spans read the bodies of the event being written)."""
        self._dir_fd: int | None = None

    @classmethod
    def create(
        cls, bundle_dir: Path, *, seal_bytes: int = DEFAULT_SEAL_BYTES
    ) -> PayloadShardWriter:
        """Create the bundle's ``payloads`` directory (owner-only) and a writer for it.

        Raises:
            OSError: The directory could not be created.
        """
        directory = bundle_dir / PAYLOADS_DIR_NAME
        make_private_dir(directory)
        return cls(directory, seal_bytes=seal_bytes)

    @property
    def open_shard(self) -> int:
        """The number of the shard records are added to now."""
        return self.sealed_through + 1

    @property
    def last_shard(self) -> int:
        """The highest shard number any ref given so far names (the open shard once it
        holds a record)."""
        return self.sealed_through + 1 if self._used else self.sealed_through

    @property
    def open_bytes(self) -> int:
        """Bytes of the records in the open shard (not yet on disk)."""
        return self._used

    def new_id(self) -> str:
        """Number the next payload: ``raw_payload:<n>``, ``n`` from 1 in call order."""
        return _ID_PREFIX + str(next(self._ordinals))

    def add(
        self,
        payload_id: str,
        kind: PayloadKind,
        body: bytes,
        *,
        parts: list[RawPayloadRef] | msgspec.UnsetType = msgspec.UNSET,
        capture: PayloadCapture | msgspec.UnsetType = msgspec.UNSET,
    ) -> RawPayloadRef:
        """Add ``body`` as the record of ``payload_id`` to the open shard and return its ref.

        Seals nothing: the caller seals (``open_bytes`` against ``seal_bytes``).
        """
        self._used = put_record(self._records, self._used, payload_id, body)
        if self.stored is not None:
            self.stored[payload_id] = body
        return RawPayloadRef(
            raw_payload_id=payload_id,
            kind=PAYLOAD_KINDS[kind],
            shard=self.open_shard,
            capture=capture,
            parts=parts,
        )

    @staticmethod
    def omitted(
        payload_id: str,
        kind: PayloadKind,
        original_bytes: int,
        *,
        parts: list[RawPayloadRef] | msgspec.UnsetType = msgspec.UNSET,
    ) -> RawPayloadRef:
        """The ref of a payload left out by a size limit: no shard, an ``omitted`` capture."""
        return RawPayloadRef(
            raw_payload_id=payload_id,
            kind=PAYLOAD_KINDS[kind],
            shard=None,
            capture=PayloadCapture(status=CaptureStatus.OMITTED, original_bytes=original_bytes),
            parts=parts,
        )

    def seal(self) -> int:
        """Write the open shard whole (if it holds a record) and open the next.

        Returns the compressed size written (0 when there was nothing to seal).

        Raises:
            OSError: The shard could not be written; its records stay open.
        """
        if not self._used:
            return 0
        # both views released on the way out, even on an error: a buffer with a view
        # alive cannot grow
        with memoryview(self._records) as whole, whole[: self._used] as records:
            frame = self._compressor.compress(records)
        if self._dir_fd is None:
            self._dir_fd = open_dir(self.directory)
        write_whole(shard_name(self.open_shard), frame, dir_fd=self._dir_fd)
        self._used = 0
        if len(self._records) > 2 * self.seal_bytes:  # grown by one huge record: not kept
            self._records = bytearray()
        self.sealed_through += 1
        return len(frame)

    def close(self) -> None:
        """Close the directory descriptor and let the buffer go (the open shard is not
        sealed). Idempotent."""
        fd, self._dir_fd = self._dir_fd, None
        close_quietly(fd)
        if not self._used:
            self._records = bytearray()
