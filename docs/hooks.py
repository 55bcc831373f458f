"""mkdocs hook: render the executed copies of the tutorial notebooks when they exist.

The notebooks are committed without outputs (``docs/tutorials/*.ipynb``).
``make notebooks`` executes each one into ``build/tutorials/`` (see
``docs/tutorials/test_tutorials.py``); this hook makes mkdocs-jupyter read that
copy instead of the bare source, so the site shows outputs produced by the run.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.tutorials")
EXECUTED = Path(__file__).resolve().parent.parent / "build" / "tutorials"


def on_files(files, config):  # noqa: D103 (mkdocs hook signature)
    swapped = 0
    for f in files:
        if f.src_uri.startswith("tutorials/") and f.src_uri.endswith(".ipynb"):
            executed = EXECUTED / Path(f.src_uri).name
            if (
                executed.is_file()
                and executed.stat().st_mtime >= Path(f.abs_src_path).stat().st_mtime
            ):
                f.abs_src_path = str(executed)
                swapped += 1
    log.info("tutorials: %d executed notebooks from %s", swapped, EXECUTED)
    return files
