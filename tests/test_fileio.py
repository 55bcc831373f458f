"""mgr.fileio: a target is the old complete file, the new complete file, or absent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mgr import fileio
from mgr.fileio import atomic_path, atomic_write, write_bytes, write_json, write_text

OLD = b"old complete file\n" * 10


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(fileio.PARTIAL_SUFFIX))


def test_success_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(OLD)
    with atomic_write(target) as f:
        f.write(b"new")
        assert target.read_bytes() == OLD  # nothing visible before the block ends
    assert target.read_bytes() == b"new"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("existed", [True, False])
def test_error_mid_write_keeps_the_old_file_or_nothing(tmp_path: Path, existed: bool) -> None:
    target = tmp_path / "out.npz"
    if existed:
        target.write_bytes(OLD)
    with pytest.raises(OSError, match="disk full"), atomic_write(target) as f:
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")
    assert (target.read_bytes() == OLD) if existed else not target.exists()
    assert _leftovers(tmp_path) == []


def test_sigkill_mid_write_keeps_the_old_file(tmp_path: Path) -> None:
    """A real process killed inside the write: the target keeps its old bytes."""
    target = tmp_path / "val.npz"
    target.write_bytes(OLD)
    # mgr.fileio imports nothing from mgr: load it by path, no package import needed.
    code = f"""
import importlib.util, os, signal
spec = importlib.util.spec_from_file_location("fileio", {str(Path(fileio.__file__))!r})
fileio = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fileio)
with fileio.atomic_write({str(target)!r}) as f:
    f.write(b"x" * (1 << 20))
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert target.read_bytes() == OLD
    # The killed writer's temporary file stays, hidden, under a name no reader asks for.
    (partial,) = _leftovers(tmp_path)
    assert partial.startswith(".val.npz.") and (tmp_path / partial).stat().st_size == 1 << 20


def test_numpy_writers_through_a_file_object(tmp_path: Path) -> None:
    target = tmp_path / "a.npz"
    with atomic_write(target) as f:
        np.savez(f, x=np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]  # no a.npz.npz
    with np.load(target) as z:
        assert z["x"].tolist() == [0, 1, 2]


def test_atomic_path_for_writers_that_take_a_name(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(OLD)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError
    assert target.read_bytes() == OLD and _leftovers(tmp_path) == []
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(FileNotFoundError, match="nothing was written"), atomic_path(target):
        pass
    assert target.read_bytes() == b"new"


def test_text_json_and_bytes(tmp_path: Path) -> None:
    assert write_text(tmp_path / "a.csv", "a,b\r\n1,2\r\n").read_bytes() == b"a,b\r\n1,2\r\n"
    assert write_bytes(tmp_path / "b", b"\x00\x01").read_bytes() == b"\x00\x01"
    write_json(tmp_path / "m.json", {"k": [1, 2]}, indent=1)
    assert json.loads((tmp_path / "m.json").read_text()) == {"k": [1, 2]}
    # Not JSON-able: raises before the file is touched.
    with pytest.raises(TypeError):
        write_json(tmp_path / "m.json", {"k": object()})
    assert json.loads((tmp_path / "m.json").read_text()) == {"k": [1, 2]}


def test_permissions_follow_the_umask(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        path = write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_mode_must_write(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"), atomic_write(tmp_path / "x", "rb"):
        pass
