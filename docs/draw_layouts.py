"""Draw the keypoint layouts of mgr.skeletons into docs/images/layouts.png.

Poses come from SynthMG (iMiGUE 35, MiGA'25 OpenPose 137, SMG Kinect 25) and from the
tests' whole-body template (COCO-WholeBody 133). Run from the repository root:
``python docs/draw_layouts.py`` (about two minutes: the MiGA'25 xlsx files are slow).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import mgr
from mgr.skeletons import get_layout

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.pose_models import wholebody_template


def first_frame(dm: mgr.MicroGestureDataModule) -> np.ndarray:
    """The frame of the first training clips with the most detected joints."""
    dm.setup("fit")
    frames = np.concatenate([r.keypoint[..., :2] for r in dm.records["train"][:4]])
    return frames[int((frames != 0).any(-1).sum(-1).argmax())]


def draw(ax, xy, layout, highlight=None, numbers=True, title=""):
    """Joints, limbs, subset joints circled in red, joint indices."""
    for i, j in layout.limbs:
        if (xy[[i, j]] != 0).all():
            ax.plot(xy[[i, j], 0], xy[[i, j], 1], "-", color="0.6", lw=1)
    shown = (xy != 0).any(1)
    ax.scatter(xy[shown, 0], xy[shown, 1], s=8 if len(xy) > 40 else 14, c="tab:blue", zorder=3)
    if highlight is not None:
        h = np.zeros(len(xy), bool)
        h[list(highlight)] = True
        ax.scatter(
            xy[h & shown, 0],
            xy[h & shown, 1],
            s=40,
            facecolors="none",
            edgecolors="tab:red",
            zorder=4,
        )
    if numbers:
        for v in np.flatnonzero(shown):
            ax.annotate(str(v), xy[v], fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal")
    ax.invert_yaxis()
    ax.axis("off")


def main(out: Path) -> None:
    """Write the four-panel picture to ``out``."""
    work = Path(tempfile.mkdtemp())
    small = dict(seed=0, subjects=(1, 1, 1), videos_per_subject=1, clips_per_video=2)
    im35 = first_frame(
        mgr.IMiGUEDataModule(mgr.generate_synthmg(work / "im", layout="imigue", **small))
    )
    op137 = first_frame(
        mgr.IMiGUEDataModule(
            mgr.generate_synthmg(work / "op", layout="imigue", source="miga25", **small),
            source="miga25",
        )
    )
    smg = mgr.generate_synthmg(work / "smg", layout="smg", seed=0, clips_per_video=2)
    k25 = first_frame(mgr.SMGDataModule(smg, coords="pixel"))
    wb = wholebody_template()[:, :2] * [192, 256]

    fig, axes = plt.subplots(1, 4, figsize=(16, 6))
    l35, l22 = get_layout("imigue_light_hand_35"), get_layout("imigue_miga_22")
    draw(axes[0], k25, get_layout("kinect_v2_25"), title="kinect_v2_25 (SMG)")
    draw(
        axes[1],
        im35,
        l35,
        highlight=l22.parent_indices,
        title="imigue_light_hand_35 (iMiGUE MiGA'23)\nred: imigue_miga_22",
    )
    l36 = get_layout("mmgesture_36")
    draw(
        axes[2],
        op137,
        get_layout("openpose_137"),
        highlight=l36.parent_indices,
        numbers=False,
        title="openpose_137 (iMiGUE MiGA'25)\nred: mmgesture_36",
    )
    draw(
        axes[3],
        wb,
        get_layout("coco_wholebody_133"),
        highlight=range(17),
        numbers=False,
        title="coco_wholebody_133 (mgr pose)\nred: coco_17",
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main(Path(__file__).resolve().parent / "images" / "layouts.png")
