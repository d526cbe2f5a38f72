"""Bounded reads: only regular files, never more than a cap, lines streamed in linear time.

Every file a reader opens (``manifest.json``, ``trace.jsonl``, payload files and shards)
goes through here. A FIFO, device or directory where a file should be is refused before
a byte is read (it is opened non-blocking, so a FIFO cannot hang the reader); a file, or
one line of ``trace.jsonl``, longer than the cap (``OTEL_ROLLOUT_MAX_READ_BYTES``, default
256 MiB) is refused before it is read whole.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import BinaryIO, Final

from otel_rollout._config import MAX_READ_BYTES_ENV, max_read_bytes_from_env

_OPEN_FLAGS: Final = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0)
_CHUNK: Final = 1 << 20
SERDE_DEPTH_LIMIT: Final = 128
"""serde_json's recursion limit: JSON nested this many levels or more is refused."""
_NOT_STRUCTURE: Final = bytes(byte for byte in range(256) if byte not in b'[]{}"')
_NOT_ESCAPE: Final = bytes(byte for byte in range(256) if byte not in b'[]{}"\\/bfnrtu')
"""All but brackets, quotes, backslashes and what a JSON escape puts after a backslash."""
_ONE_KIND: Final = bytes.maketrans(b"{}", b"[]")
"""Objects and arrays count alike for depth: one kind of bracket, so one pass is one level."""


class ReadRefused(OSError):
    """A file is not read: it is not a regular file, or it is larger than the cap."""


class LineTooLong(ReadRefused):
    """A line of ``trace.jsonl`` is longer than the cap."""

    def __init__(self, line: int, cap: int) -> None:
        """Name the line and the cap."""
        super().__init__(f"line longer than the read limit ({cap} bytes; set {MAX_READ_BYTES_ENV})")
        self.line = line


def read_cap() -> int:
    """The most bytes one file or line may hold (``OTEL_ROLLOUT_MAX_READ_BYTES``)."""
    return max_read_bytes_from_env()


def open_regular(path: str | os.PathLike[str], *, flags: int = 0, dir_fd: int | None = None) -> int:
    """Open ``path`` for reading (following symlinks unless ``flags`` says otherwise).

    Raises:
        ReadRefused: It is not a regular file (a FIFO, device or directory).
        OSError: It cannot be opened.
    """
    fd = os.open(path, _OPEN_FLAGS | flags, dir_fd=dir_fd)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ReadRefused(f"not a regular file ({_kind(mode)})")
        if _OPEN_FLAGS & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def read_fd(fd: int, cap: int) -> bytes:
    """Read the open regular file ``fd`` whole (at most ``cap`` bytes), then close it.

    Raises:
        ReadRefused: The file holds more than ``cap`` bytes (nothing past the cap is read).
    """
    try:
        size = os.fstat(fd).st_size
        if size > cap:
            raise ReadRefused(_too_big(size, cap))
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(_CHUNK, cap + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > cap:  # it grew while being read
                raise ReadRefused(_too_big(total, cap))
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_regular(path: str | os.PathLike[str], cap: int | None = None) -> bytes:
    """Read the regular file at ``path`` whole, refusing one larger than ``cap``.

    Raises:
        ReadRefused: Not a regular file, or larger than the cap.
        OSError: It cannot be opened or read.
    """
    return read_fd(open_regular(path), read_cap() if cap is None else cap)


def _too_big(size: int, cap: int) -> str:
    return f"larger than the read limit ({size} > {cap} bytes; set {MAX_READ_BYTES_ENV})"


def last_line_end(handle: BinaryIO) -> tuple[int, int]:
    """``(end, size)``: the offset just past the last newline of ``handle``, and its size.

    Scans backwards in fixed blocks, so a torn tail costs time linear in its length and
    constant memory.
    """
    size = handle.seek(0, os.SEEK_END)
    position = size
    while position > 0:
        step = min(_CHUNK, position)
        position -= step
        handle.seek(position)
        newline = handle.read(step).rfind(b"\n")
        if newline >= 0:
            return position + newline + 1, size
    return 0, size


def complete_lines(handle: BinaryIO, end: int, cap: int) -> Iterator[tuple[int, bytes]]:
    """Yield ``(1-based number, line without its newline)`` for the bytes before ``end``.

    Raises:
        ReadRefused: A line is longer than ``cap`` (at its number, in ``.line``).
    """
    handle.seek(0)
    position = 0
    number = 0
    while position < end:
        data = handle.readline(min(cap + 1, end - position))
        if not data:
            return  # the file shrank under us
        number += 1
        position += len(data)
        if not data.endswith(b"\n"):
            if len(data) > cap:
                raise LineTooLong(number, cap)
            return  # the file changed under us: stop at what was complete
        yield number, data[:-1]


def nested_too_deep(data: bytes, limit: int = SERDE_DEPTH_LIMIT) -> bool:
    """Whether the JSON text ``data`` nests arrays and objects ``limit`` levels or more.

    ``data`` must be valid JSON (it is called once the decoder took it). Linear in the
    size (C-speed passes: no regular expression), and almost free when the text holds
    fewer than ``limit`` brackets.
    """
    if data.count(b"[") + data.count(b"{") < limit:
        return False
    # First only the bytes escapes need stay: a backslash is still followed by the character
    # it escapes, so escaped backslashes, then escaped quotes, go as from the whole text (in a
    # third of it). The quotes left delimit the strings (even pieces are outside them); only
    # brackets, of one kind, stay. Two quotes in a row go first: the parity of the quotes
    # before each bracket, so whether it is in a string, stays (and most pieces go).
    text = data.translate(None, _NOT_ESCAPE).replace(b"\\\\", b"").replace(b'\\"', b"")
    text = text.translate(_ONE_KIND, _NOT_STRUCTURE).replace(b'""', b"")
    skeleton = b"".join(text.split(b'"')[::2])
    for _ in range(limit - 1):  # each pass removes the innermost level
        if not skeleton:
            return False
        shorter = skeleton.replace(b"[]", b"")
        if len(shorter) == len(skeleton):
            return False  # unbalanced: the decoder has judged it
        skeleton = shorter
    return bool(skeleton)
