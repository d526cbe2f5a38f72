"""Bundle files on disk: readable by the owner only, and written whole or not at all."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Final

FILE_MODE: Final = 0o600
"""Mode of every bundle file (the manifest, the event log, payloads)."""
DIR_MODE: Final = 0o700
"""Mode of every bundle directory."""

_CREATE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
_DIR_FLAGS: Final = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC


def make_private_dir(path: Path) -> None:
    """Create the directory ``path`` with :data:`DIR_MODE` (whatever the umask).

    Raises:
        OSError: It exists already or cannot be created.
    """
    path.mkdir(mode=DIR_MODE)
    os.chmod(path, DIR_MODE)


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents with :data:`DIR_MODE` (whatever the umask).

    Only directories this call creates get the mode: an existing directory (the user's)
    is never chmod-ed.

    Raises:
        OSError: A directory cannot be created (or ``path`` is not a directory).
    """
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if directory.is_dir():
                continue  # made by someone else meanwhile: theirs, left as it is
            raise
        os.chmod(directory, DIR_MODE)


def open_dir(path: str | os.PathLike[str]) -> int:
    """Open a directory for creating files in it (``dir_fd``); the caller closes it."""
    return os.open(path, _DIR_FLAGS)


def close_quietly(fd: int | None) -> None:
    """Close ``fd`` if there is one; a failing close is not worth a warning (nothing was lost)."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def write_whole(path: str, data: bytes, *, dir_fd: int | None = None) -> None:
    """Write ``data`` to ``path`` (relative to ``dir_fd`` if given), whole or not at all.

    The bytes go to ``.<name>.tmp`` beside it, which is then renamed: a crash at any
    moment leaves ``path`` complete or absent, never partial. Relative to an open
    directory this is four system calls. A failed write removes the temporary file.

    Raises:
        OSError: The file could not be written; ``path`` is unchanged.
    """
    head, sep, name = path.rpartition("/")
    temporary = f"{head}{sep}.{name}.tmp"
    fd = os.open(temporary, _CREATE_FLAGS, FILE_MODE, dir_fd=dir_fd)
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(temporary, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise


def write_chunks_whole(
    path: str,
    chunks: Iterable[bytes],
    *,
    dir_fd: int | None = None,
    buffer_bytes: int = 1 << 20,
) -> None:
    """Write the concatenated ``chunks`` to ``path`` as :func:`write_whole` writes, holding
    about ``buffer_bytes`` of them at a time (``state.json``, written as it is encoded).
    Kept apart from :func:`write_whole`, which the live writer calls for every payload file.

    Raises:
        OSError: The file could not be written; ``path`` is unchanged.
    """
    head, sep, name = path.rpartition("/")
    temporary = f"{head}{sep}.{name}.tmp"
    fd = os.open(temporary, _CREATE_FLAGS, FILE_MODE, dir_fd=dir_fd)
    try:
        try:
            pending: list[bytes] = []
            size = 0
            for chunk in chunks:
                pending.append(chunk)
                size += len(chunk)
                if size >= buffer_bytes:
                    _write_all(fd, pending[0] if len(pending) == 1 else b"".join(pending))
                    pending.clear()
                    size = 0
            if pending:
                _write_all(fd, pending[0] if len(pending) == 1 else b"".join(pending))
        finally:
            os.close(fd)
        os.replace(temporary, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]
