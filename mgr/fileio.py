"""Atomic file writes: a file is either its old complete self, the new complete file, or absent.

Every file mgr writes that a later run reads back (checkpoints, prediction sets,
submission files, feature and parse caches, PoseC3D pickles) goes through this
module. The data is written to a temporary file in the target's folder (same
file system, so the final rename is atomic), flushed to disk, and renamed onto
the target with :func:`os.replace`. A process killed mid-write (SIGKILL, out of
memory, a pre-empted node) leaves the target untouched and, at worst, a hidden
``.<name>.<random>.partial`` file that no reader looks at.

Outputs made of several files get a *marker* written last (``meta.json``,
``cache.json``): a writer first removes the entries it is about to replace from
the marker, then writes the files, then adds them back, so a reader that trusts
only what the marker lists never sees a half-updated set.

This module imports nothing from mgr, so every layer (``mgr.data`` included) may use it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "PARTIAL_SUFFIX",
    "atomic_path",
    "atomic_write",
    "partial_path",
    "replace_atomic",
    "write_bytes",
    "write_json",
    "write_text",
]

PathLike = str | os.PathLike

#: Suffix of the temporary files (never a name a reader looks for).
PARTIAL_SUFFIX = ".partial"


def partial_path(path: PathLike, token: str | None = None) -> Path:
    """A temporary name next to ``path``: ``.<name>.<token>.partial`` (hidden, same folder).

    Args:
        path: the final file.
        token: what makes the name unique; ``None``: a random one. Pass a fixed
            token when several processes must agree on the name (a checkpoint
            written by all ranks of a sharded strategy).
    """
    path = Path(path)
    token = os.urandom(6).hex() if token is None else token
    return path.with_name(f".{path.name}.{token}{PARTIAL_SUFFIX}")


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_atomic(tmp: PathLike, path: PathLike, *, fsync: bool = True) -> None:
    """Move a complete temporary file onto ``path`` in one step (:func:`os.replace`).

    Args:
        tmp: the finished temporary file (same folder as ``path``).
        path: the target; an existing file is replaced atomically.
        fsync: flush the file's data and the rename to disk first (survives a
            power loss, not only a killed process).
    """
    tmp, path = Path(tmp), Path(path)
    if fsync:
        _fsync_file(tmp)
    os.replace(tmp, path)
    if fsync:
        _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_path(path: PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """A temporary path to write instead of ``path``; renamed onto it if the block succeeds.

    For writers that want a file name (``torch.save``, ``zipfile``, a tool's
    ``save(path)``). The temporary name ends in ``.partial``; writers that append
    a suffix of their own (``np.savez`` adds ``.npz``) must be given a file object
    (:func:`atomic_write`) instead.

    Example:
        >>> with atomic_path("model.pt") as tmp:  # doctest: +SKIP
        ...     torch.save(state, tmp)

    Args:
        path: the final file (its folder must exist).
        fsync: see :func:`replace_atomic`.

    Yields:
        The temporary path. If the block raises, the temporary file is removed
        and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = partial_path(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp} (the temporary name of {path})")
        replace_atomic(tmp, path, fsync=fsync)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_write(
    path: PathLike, mode: str = "wb", *, fsync: bool = True, **open_kwargs: Any
) -> Iterator[IO]:
    """Open a temporary file for writing; it replaces ``path`` when the block succeeds.

    Example:
        >>> with atomic_write("preds/val.npz") as f:  # doctest: +SKIP
        ...     np.savez(f, logits=logits)

    Args:
        path: the final file (its folder must exist).
        mode: ``"wb"`` or ``"w"`` (text).
        fsync: see :func:`replace_atomic`.
        **open_kwargs: passed to :func:`open` (``newline``, ``encoding``).

    Yields:
        The open temporary file. If the block raises, it is removed and
        ``path`` is left as it was.
    """
    if not mode.startswith("w"):
        raise ValueError(f"atomic_write writes new files: mode must start with 'w', got {mode!r}")
    path = Path(path)
    tmp = partial_path(path)
    # O_EXCL: a fresh file of our own; mode 0o666 so the umask applies as for open().
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if fsync:
            _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(path: PathLike, data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_write(path, "wb", fsync=fsync) as f:
        f.write(data)
    return Path(path)


def write_text(path: PathLike, text: str, *, fsync: bool = True, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically, line endings as given; returns ``path``."""
    with atomic_write(path, "w", fsync=fsync, encoding=encoding, newline="") as f:
        f.write(text)
    return Path(path)


def write_json(path: PathLike, obj: Any, *, fsync: bool = True, **dumps_kwargs: Any) -> Path:
    """Write ``json.dumps(obj, **dumps_kwargs)`` to ``path`` atomically; returns ``path``.

    The object is serialised before the file is opened, so an object that is
    not JSON-able raises without touching ``path``.
    """
    return write_text(path, json.dumps(obj, **dumps_kwargs), fsync=fsync)
