"""The release folder a datamodule reads: present, written from SynthMG settings, or a UserError.

A real dataset's ``root`` must exist; when it does not, the run stops with one
line naming the option to fix. A SynthMG config records the settings that write
its release (``synthmg``, keyword arguments of
:func:`mgr.data.synthetic.generate_synthmg`); the missing-root message then
gives the exact ``mgr synth`` command, and ``synthesize: true`` writes the
release instead (a fresh clone runs ``mgr fit --config experiments/synth/...``
without a separate step). An existing root is never rewritten.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mgr.errors import UserError

__all__ = ["ensure_release", "is_synthmg_release", "synth_command"]

log = logging.getLogger(__name__)


def synth_command(root: str | Path, layout: str, settings: Mapping[str, Any]) -> str:
    """The ``mgr synth`` command line that writes ``root`` with ``settings``.

    Args:
        root: the release folder (``--out``).
        layout: ``"imigue"``, ``"smg"`` or ``"ma52"``.
        settings: fields of :class:`~mgr.data.synthetic.SynthMGConfig` (``layout`` excluded).

    Returns:
        The command, e.g. ``mgr synth --layout imigue --out data/x --seed 0 --video``.
    """
    words = ["mgr", "synth", "--layout", layout, "--out", str(root)]
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            words += [flag] if value else []
        elif isinstance(value, list | tuple):
            words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    return " ".join(words)


def is_synthmg_release(root: str | Path) -> bool:
    """Whether ``root`` holds SynthMG (``mgr synth`` writes ``synthmg.json``), not real data."""
    return (Path(root) / "synthmg.json").is_file()


def ensure_release(
    root: Path,
    layout: str,
    synthmg: Mapping[str, Any] | None,
    synthesize: bool,
    owner: str,
) -> None:
    """Make sure ``root`` holds a release: write SynthMG there if told to, else explain.

    Args:
        root: the datamodule's release folder.
        layout: SynthMG layout of the datamodule (its ``dataset``).
        synthmg: settings of the SynthMG release at ``root`` (``None``: a real dataset).
        synthesize: write the SynthMG release when ``root`` is missing.
        owner: the datamodule's class name, for the messages.

    Raises:
        UserError: if ``root`` does not exist and is not to be written; the message
            gives the ``mgr synth`` command for a SynthMG config.
    """
    if root.exists():
        return
    settings = dict(synthmg or {})
    if synthesize:
        from mgr.data.synthetic import generate_synthmg

        log.info("%s: writing SynthMG (%s layout) to %s", owner, layout, root)
        generate_synthmg(root, layout=layout, **settings)
        return
    if synthmg is not None:
        raise UserError(
            f"data root {root} does not exist: write it with "
            f"`{synth_command(root, layout, settings)}` "
            "(or set data.init_args.synthesize: true)"
        )
    raise UserError(
        f"data root {root} does not exist: point {owner}'s root "
        "(data.init_args.root) at the release folder"
    )
