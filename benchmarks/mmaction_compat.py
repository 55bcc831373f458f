"""Import shims for mmaction2 1.2.0 on numpy 2 / transformers 5 (benchmarks only, never mgr).

mmaction2 1.2.0 (the last release) imports only after: the numpy aliases it still uses
(``np.Inf``, ``np.trapz``, ``np.in1d``) are put back, a stub stands in for the
``mmaction.models.localizers.drn`` package missing from its wheel, and, with
transformers 5 installed, ``mmaction.utils.dependency.WITH_MULTIMODAL`` is off
(``/work/shared/DESIGN.md``, "Dependencies").

    from mmaction_compat import import_mmaction
    mm = import_mmaction()  # None when mmaction2 is not installed
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

import numpy as np

__all__ = ["import_mmaction"]


def import_mmaction() -> Any | None:
    """Apply the shims and import ``mmaction.datasets.transforms``; ``None`` if absent."""
    if importlib.util.find_spec("mmaction") is None:
        return None
    for old, new in (("Inf", "inf"), ("trapz", "trapezoid"), ("in1d", "isin")):
        if not hasattr(np, old):
            setattr(np, old, getattr(np, new))
    for name in ("mmaction.models.localizers.drn", "mmaction.models.localizers.drn.drn"):
        sys.modules.setdefault(name, types.ModuleType(name))
    drn = sys.modules["mmaction.models.localizers.drn.drn"]
    if not hasattr(drn, "DRN"):
        drn.DRN = type("DRN", (), {})
    try:
        import mmaction.utils.dependency as dep

        dep.WITH_MULTIMODAL = False
    except ImportError:
        pass
    import mmaction.datasets.transforms as transforms

    return transforms
