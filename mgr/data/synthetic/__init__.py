"""SynthMG: procedural micro-gestures written in the real on-disk layouts.

SynthMG lets every part of mgr run with no licence and no download. A small
articulated upper body (head, arms, five-finger hands, legs) is animated by a
table of gesture specifications, one per class of the target dataset, and the
result is written exactly as the dataset owners release their files, so the
same readers serve synthetic and real data:

* ``layout="imigue"``: the MiGA'23 iMiGUE raw layout
  ``imigue_skeleton_{train,validate,test}/<vid>/<vid>_light_hand.csv`` (frame
  index + 35 OpenPose joints x (x, y, c) in pixels) and ``<vid>_label.csv``
  (``gid,start,end``, gid 1..31 or 99, 0-based inclusive frames).
  With ``source="miga25"`` the skeleton is the MiGA'25 ``<vid>_openpose.xlsx``
  (137 OpenPose keypoints: BODY_25, face 70, left and right hand 21) instead.
* ``layout="smg"``: the SMG raw layout ``SampleXXXX/SampleXXXX_skeleton.csv``
  (25 Kinect-v2 joints x 11 values: world xyz in metres, orientation, pixel
  xy, depth xy), ``_finelabels.csv`` (``label,start,end``, label 1..17, end
  exclusive as the official classification code reads it) and ``_data.csv``.

What makes the gestures *micro*:

* classes differ by small, local motions: the right hand to the eye vs the
  forehead (about 0.1 shoulder widths, ~20 px apart), rubbing vs tapping at the
  same place, shaking shoulders vs a deep breath;
* several classes share the same mean pose and differ only in how they move
  (rub / tap / hold at one target; torso sway, shoulder shaking, lip pressing
  on a neutral body), so a model of the clip's mean pose cannot separate them;
* nuisance variation on top: per-subject body size, proportions, position and
  handedness, slow global sway, idle hand drift, keypoint jitter, OpenPose-style
  missing joints (zeros with confidence 0) and low confidences, variable clip
  lengths, a long-tailed class distribution following the real training
  histograms, and the non-micro-gesture class (large illustrative gestures).

Subjects are disjoint across splits (cross-subject), every video belongs to
one subject, and everything is deterministic from ``seed``. ``difficulty`` in
``[0, 1]`` trades the amplitude of the distinguishing motion against noise.

Geometry is kept in *body units* (shoulder width = 1; x to the image right,
y down, z towards the camera) and projected to each layout at write time. The
gesture table is our own invention, loosely following each class name; it is
not an annotation of the real datasets.

Modules: :mod:`.config` (:class:`SynthMGConfig`), :mod:`.body` (the body model,
subjects, arm kinematics), :mod:`.gestures` (the gesture table, class histograms,
FG-Text), :mod:`.motion` (a clip's joint trajectories), :mod:`.layouts` (joints ->
each release's keypoints), :mod:`.render` (the RGB renderer), :mod:`.writers` (one
writer per on-disk layout) and :mod:`.generate` (:func:`generate_synthmg`). The
public names are importable from ``mgr.data.synthetic``.
"""

from .config import Layout, SynthMGConfig
from .generate import generate_synthmg
from .gestures import GESTURES, GestureSpec, synth_attributes
from .motion import render_clip
from .render import FigureStyle, render_background, render_figure

__all__ = [
    "GESTURES",
    "FigureStyle",
    "GestureSpec",
    "Layout",
    "SynthMGConfig",
    "generate_synthmg",
    "render_background",
    "render_clip",
    "render_figure",
    "synth_attributes",
]
