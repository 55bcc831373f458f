"""Late fusion of prediction sets: weighted and temperature-scaled soft voting.

Given the ``val`` and ``test`` predictions of several models (prediction sets, see
:mod:`mgr.predictions`), fusion averages their class probabilities::

    P = sum_m W_m softmax(z_m / tau_m) / sum_m W_m

* ``mean``: equal weights, ``tau = 1``.
* ``weighted``: weights grid-searched on val, ``tau = 1`` (MM-Gesture §3.5).
* ``temperature``: one global ``tau`` (2.5, the value the CMPL paper grid-searched,
  §3.4) or a per-model ``tau`` fitted by NLL on val, then weights grid-searched on val.
  Softening the overconfident models stops one of them from vetoing the others.

Everything is chosen on a small validation set (iMiGUE has 777 clips), where a grid
search easily finds weights that only fit noise. The **overfitting guard** therefore
keeps the uniform weights (and, between methods, plain ``mean``) unless the
alternative beats it on val by more than ``min_gain``; by default one standard error
of the uniform top-1 accuracy, ``sqrt(p (1 - p) / N)``, the smallest difference that
``N`` validation samples can resolve.

``mgr fuse --preds DIR [DIR ...] --out DIR`` runs :func:`fuse_main`.

Modules: :mod:`.maths` (soft voting, temperatures, scores, weight search on
arrays), :mod:`.sets` (fusing aligned prediction sets: :func:`fuse`) and
:mod:`.command` (the table, the reliability plot and ``mgr fuse``). Every name
is importable from ``mgr.fusion``.
"""

from .command import format_protocols, format_table, fuse_main, reliability_plot, split_protocol
from .maths import (
    DEFAULT_GRID,
    METHODS,
    SCORES,
    TAU_RANGE,
    WeightSearch,
    fit_temperature,
    fuse_probs,
    metrics,
    search_weights,
)
from .sets import FusionResult, FusionRow, fuse

__all__ = [
    "DEFAULT_GRID",
    "METHODS",
    "SCORES",
    "TAU_RANGE",
    "FusionResult",
    "FusionRow",
    "WeightSearch",
    "fit_temperature",
    "format_protocols",
    "format_table",
    "fuse",
    "fuse_main",
    "fuse_probs",
    "metrics",
    "reliability_plot",
    "search_weights",
    "split_protocol",
]
