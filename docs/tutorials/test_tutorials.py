"""Execute the tutorial notebooks (``make notebooks``), each with a fresh kernel.

Every notebook runs top to bottom with nbclient; a cell that raises fails its test with
the cell's traceback. The executed copy (with outputs) goes to ``build/tutorials/``,
where ``make docs`` picks it up (``docs/hooks.py``); the wall time and the kernel's CPU
time of each run go to ``build/tutorials/timings.json``.
Not part of ``make test``: these take minutes.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = ROOT / "build" / "tutorials"
NOTEBOOKS = sorted(HERE.glob("*.ipynb"))
TIMEOUT_S = int(os.environ.get("MGR_NOTEBOOK_TIMEOUT", "900"))  # per cell


def test_committed_without_outputs() -> None:
    """The committed notebooks carry no outputs: the run produces them."""
    stale = [
        nb.name
        for nb in NOTEBOOKS
        for cell in nbformat.read(nb, as_version=4).cells
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count)
    ]
    assert not stale, f"clear the outputs of {sorted(set(stale))} before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path) -> None:
    """The notebook runs top to bottom without an error."""
    nb = nbformat.read(path, as_version=4)
    # The kernel imports mgr from this checkout, whatever is installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    client = NotebookClient(
        nb, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
    )
    # The kernel is a child process: its CPU time lands in RUSAGE_CHILDREN once it exits.
    cpu0 = _children_cpu()
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    cpu = _children_cpu() - cpu0
    OUT.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, OUT / path.name)
    timings = OUT / "timings.json"
    done = json.loads(timings.read_text()) if timings.is_file() else {}
    done[path.stem] = {"wall_s": round(seconds, 1), "kernel_cpu_s": round(cpu, 1)}
    timings.write_text(json.dumps(done, indent=1, sort_keys=True) + "\n")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
