"""mmaction2 1.2.0 for the parity tests: the shims it needs on this stack, in one place.

The ``openmmlab`` extra (pinned in requirements/ci.txt) installs mmaction2 1.2.0,
mmengine 0.10 and mmcv-lite 2.1.0. On numpy 2 and transformers 5 mmaction2 1.2.0
imports only with (DESIGN.md, "Dependencies"):

* numpy 1 aliases that numpy 2 removed (``np.Inf``, ``np.trapz``, ``np.in1d``);
* a stub for ``mmaction.models.localizers.drn``, which its wheel does not ship;
* ``mmaction.utils.dependency.WITH_MULTIMODAL = False`` (its multimodal models do
  not import with transformers 5).

The shims live in tests only, never in ``mgr/``: mgr never imports OpenMMLab.
Every parity test takes the ``mmaction`` fixture of ``tests/conftest.py``, which
calls :func:`import_mmaction`; without the extra the test is skipped.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

_NUMPY_ALIASES = (("Inf", "inf"), ("trapz", "trapezoid"), ("in1d", "isin"))
_MISSING_MODULES = ("mmaction.models.localizers.drn", "mmaction.models.localizers.drn.drn")


def import_mmaction(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Import mmaction2 with the shims (undone after the test), or skip the test.

    Returns:
        The ``mmaction`` package.
    """
    pytest.importorskip("mmaction", reason="the openmmlab extra (mmaction2 1.2.0) is absent")
    for old, new in _NUMPY_ALIASES:
        if not hasattr(np, old):
            monkeypatch.setattr(np, old, getattr(np, new), raising=False)
    for name in _MISSING_MODULES:
        if name not in sys.modules:
            monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    drn = sys.modules[_MISSING_MODULES[1]]
    if not hasattr(drn, "DRN"):
        monkeypatch.setattr(drn, "DRN", type("DRN", (), {}), raising=False)
    import mmaction.utils.dependency as dependency

    monkeypatch.setattr(dependency, "WITH_MULTIMODAL", False, raising=False)
    import mmaction.models  # registers every backbone, head and transform

    return mmaction
