"""The zstd payload shards of schema 3 (Codex 0.171.0): record codec, frames, bounded reads.

A shard ``payloads/NNNNNN.zst`` (six digits, from ``000001``) is one zstd frame carrying its
checksum and content size. Decompressed, it is a sequence of records::

    u16 LE id_len | u64 LE body_len | id (``raw_payload:N``, UTF-8) | body (compact JSON)

A body cut by a size limit (``capture.status == "truncated"``) holds only the retained
prefix, so it need not be valid JSON on its own.

Reading is bounded: a frame is decompressed in chunks and refused once it passes
``max_bytes`` (a decompression bomb, or a content size that lies), and a record whose
lengths run past the end of the frame is refused; no length read from the file sizes
an allocation before it is checked against the bytes actually there.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import zstandard

# zstandard is imported where it is used: a command that never meets schema 3 never loads it.

SHARD_SUFFIX: Final = ".zst"
RECORD_HEADER: Final = struct.Struct("<HQ")
"""``id_len`` (u16 LE) and ``body_len`` (u64 LE) before each record's id and body."""
DEFAULT_MAX_SHARD_BYTES: Final = 1 << 30
"""Largest decompressed shard read (1 GiB); a frame that grows past it is refused."""
COMPRESSION_LEVEL: Final = 1
"""zstd's fastest regular level: about twice as fast as the default (3) for ~10 % more
bytes, on the writer thread's path to the disk; Codex 0.171.0 reads frames of any level."""
_CHUNK: Final = 1 << 20


class ShardError(ValueError):
    """A shard that cannot be read: bad frame, bad record, or over the size bound."""


class TruncatedShardError(ShardError):
    """A shard whose frame stops short: half-written (a crash while it was written)."""


def shard_name(number: int) -> str:
    """The file name of shard ``number`` (``000001.zst`` for 1)."""
    return f"{number:06d}{SHARD_SUFFIX}"


def encode_record(payload_id: str, body: bytes) -> bytes:
    """One record: header, id, body."""
    ident = payload_id.encode()
    return RECORD_HEADER.pack(len(ident), len(body)) + ident + body


def put_record(buffer: bytearray, offset: int, payload_id: str, body: bytes) -> int:
    """Write one record (:func:`encode_record`'s bytes) into ``buffer`` at ``offset``, ``body``
    copied once, and return the offset after it. ``buffer`` is a reused one: it grows (at
    least doubling) only when the record does not fit, else nothing is allocated."""
    ident = payload_id.encode()
    body_at = offset + RECORD_HEADER.size + len(ident)
    end = body_at + len(body)
    if end > len(buffer):
        buffer.extend(bytes(max(end, 2 * len(buffer)) - len(buffer)))
    RECORD_HEADER.pack_into(buffer, offset, len(ident), len(body))
    buffer[offset + RECORD_HEADER.size : body_at] = ident
    buffer[body_at:end] = body
    return end


def shard_compressor() -> zstandard.ZstdCompressor:
    """A compressor of shard frames (checksum and content size); reusable, one thread at a
    time. Its ``compress(records)`` of a whole shard is one call, which releases the GIL
    for all of it (other threads run beside it)."""
    import zstandard

    return zstandard.ZstdCompressor(
        level=COMPRESSION_LEVEL, write_checksum=True, write_content_size=True
    )


def compress_shard(records: Iterable[bytes]) -> bytes:
    """One zstd frame holding ``records`` (from :func:`encode_record`), with checksum and size."""
    return shard_compressor().compress(b"".join(records))


def decompress_shard(frame: bytes, max_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> bytes:
    """The records of one shard, decompressed; never more than ``max_bytes``.

    A shard is one zstd frame as 0.171.0 writes it; frames following it are read on, as
    0.171.0 reads them (one stream of records across them).

    Raises:
        ShardError: A frame that is corrupt, truncated (:class:`TruncatedShardError`), has
            a bad checksum or is followed by bytes that are not a frame, or more than
            ``max_bytes`` of content in all.
    """
    import zstandard

    chunks: list[bytes] = []
    size = 0
    offset = 0
    view = memoryview(frame)
    while True:
        try:
            params = zstandard.get_frame_parameters(view[offset:])
        except zstandard.ZstdError as error:
            raise ShardError(f"not a zstd frame at byte {offset}: {error}") from None
        declared = params.content_size
        if declared != zstandard.CONTENTSIZE_UNKNOWN and size + declared > max_bytes:
            raise ShardError(f"declares {declared} bytes, over the {max_bytes}-byte bound")
        end = offset + _frame_size(view[offset:], params.has_checksum)
        reader = zstandard.ZstdDecompressor().stream_reader(
            view[offset:end], read_across_frames=False
        )
        try:
            with reader:
                while chunk := reader.read(_CHUNK):  # each read is bounded: a bomb stops below
                    size += len(chunk)
                    if size > max_bytes:
                        raise ShardError(f"decompresses past the {max_bytes}-byte bound")
                    chunks.append(chunk)
        except zstandard.ZstdError as error:
            raise ShardError(f"corrupt zstd frame: {error}") from None
        offset = end
        if offset == len(frame):
            return b"".join(chunks)


def _frame_size(frame: bytes | memoryview, has_checksum: bool) -> int:
    """Bytes of the zstd frame at the start of ``frame``, from its block headers.

    Raises:
        ShardError: A block runs past the end (a truncated frame) or is of a reserved type.
    """
    import zstandard

    offset = zstandard.frame_header_size(frame)
    end = len(frame)
    while True:
        if end - offset < 3:
            raise TruncatedShardError("truncated zstd frame (half-written)")
        header = int.from_bytes(frame[offset : offset + 3], "little")
        offset += 3
        last, block_type, block_size = header & 1, (header >> 1) & 3, header >> 3
        if block_type == 3:
            raise ShardError("corrupt zstd frame: reserved block type")
        offset += 1 if block_type == 1 else block_size  # RLE: one byte repeated
        if offset > end:
            raise TruncatedShardError("truncated zstd frame (half-written)")
        if last:
            break
    offset += 4 if has_checksum else 0
    if offset > end:
        raise TruncatedShardError("truncated zstd frame (half-written)")
    return offset


def iter_records(data: bytes) -> Iterator[tuple[str, int, int]]:
    """``(id, body offset, body length)`` of each record of decompressed shard ``data``.

    Raises:
        ShardError: A record's header, id or body runs past the end, or an id is not UTF-8.
    """
    offset = 0
    end = len(data)
    header = RECORD_HEADER.size
    while offset < end:
        if end - offset < header:
            raise ShardError(f"record header at byte {offset} runs past the end")
        id_len, body_len = RECORD_HEADER.unpack_from(data, offset)
        offset += header
        if id_len > end - offset:
            raise ShardError(f"record id at byte {offset} runs past the end")
        try:
            ident = data[offset : offset + id_len].decode()
        except UnicodeDecodeError:
            raise ShardError(f"record id at byte {offset} is not UTF-8") from None
        offset += id_len
        if body_len > end - offset:
            raise ShardError(f"record {ident} body runs past the end")
        yield ident, offset, body_len
        offset += body_len
