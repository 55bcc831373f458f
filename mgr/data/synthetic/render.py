"""Rasterise SynthMG's body model into RGB frames.

A flat-shaded figure (capsules for limbs, discs for the head and joints) on a
per-subject textured background: enough appearance for an RGB recognizer to
learn the same micro-gestures the skeleton shows, with nothing downloaded. The
figure is drawn from the same body-unit joint positions the skeleton files are
projected from, so skeleton and video agree frame by frame.

Drawing is vectorised over frames: each capsule is evaluated only inside the
bounding box it sweeps over a chunk of frames, so a frame costs a few hundred
microseconds at 320x180.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["FigureStyle", "render_background", "render_figure"]

# (joint a, joint b, radius in body units, colour key). Order = painting order.
_LEGS = (
    ("r_hip", "r_knee", 0.15, "trousers"),
    ("l_hip", "l_knee", 0.15, "trousers"),
    ("r_knee", "r_ankle", 0.12, "trousers"),
    ("l_knee", "l_ankle", 0.12, "trousers"),
    ("r_ankle", "r_bigtoe", 0.08, "shoes"),
    ("l_ankle", "l_bigtoe", 0.08, "shoes"),
)
_TORSO = (
    ("neck", "spine_mid", 0.36, "shirt"),
    ("spine_mid", "mid_hip", 0.32, "shirt"),
    ("r_shoulder", "l_shoulder", 0.14, "shirt"),
    ("r_shoulder", "r_hip", 0.12, "shirt"),
    ("l_shoulder", "l_hip", 0.12, "shirt"),
    ("neck", "head", 0.1, "skin"),
)
_HEAD = (
    ("head", "head", 0.27, "skin"),
    ("r_ear", "r_ear", 0.07, "skin_dark"),
    ("l_ear", "l_ear", 0.07, "skin_dark"),
    ("r_eye", "r_eye", 0.04, "eyes"),
    ("l_eye", "l_eye", 0.04, "eyes"),
    ("nose", "nose", 0.045, "skin_dark"),
)
_ARM = (
    ("{s}_shoulder", "{s}_elbow", 0.1, "shirt"),
    ("{s}_elbow", "{s}_wrist", 0.085, "sleeve"),
    ("{s}_wrist", "{s}_hand", 0.075, "skin"),
    *(("{s}_wrist", f"{{s}}_finger{i}", 0.028, "skin") for i in range(1, 6)),
)
_HAND_PARTS = {"wrist", "hand", "finger1", "finger2", "finger3", "finger4", "finger5"}
_CHUNK = 16  # frames per vectorised block: keeps swept bounding boxes tight


@dataclass(frozen=True)
class FigureStyle:
    """Colours and camera of one subject.

    Attributes:
        colours: colour key -> RGB in [0, 255].
        origin: image position ``(x, y)`` of the neck in the skeleton's image space.
        scale: pixels per body unit in the skeleton's image space.
        image_size: ``(H, W)`` of the skeleton's image space.
        desk: draw a desk over the lower body (iMiGUE's press-conference setting).
    """

    colours: Mapping[str, tuple[int, int, int]]
    origin: tuple[float, float]
    scale: float
    image_size: tuple[int, int] = (1080, 1920)
    desk: bool = False

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        origin: tuple[float, float],
        scale: float,
        image_size: tuple[int, int] = (1080, 1920),
        desk: bool = False,
    ) -> FigureStyle:
        """A random outfit and skin tone."""
        skin = np.array([224, 172, 138]) * rng.uniform(0.55, 1.1)
        shirt = rng.integers(30, 226, 3)
        colours = {
            "skin": skin,
            "skin_dark": skin * 0.8,
            "eyes": np.array([40, 30, 30]),
            "shirt": shirt,
            "sleeve": shirt * rng.uniform(0.8, 1.0),
            "trousers": rng.integers(20, 120, 3),
            "shoes": np.array([25, 25, 25]),
            "desk": rng.integers(90, 170, 3) * np.array([1.0, 0.8, 0.6]),
        }
        return cls(
            colours={k: tuple(int(c) for c in np.clip(v, 0, 255)) for k, v in colours.items()},
            origin=(float(origin[0]), float(origin[1])),
            scale=float(scale),
            image_size=image_size,
            desk=desk,
        )


def render_background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A static textured background: smooth colour blobs and vertical curtain folds.

    Args:
        rng: random generator (one background per subject).
        size: ``(H, W)`` of the video.

    Returns:
        ``(H, W, 3)`` float32 image in [0, 255].
    """
    h, w = size
    base = rng.uniform(60, 200, 3)
    coarse = rng.normal(0, 25, (4, 6, 3))
    ys = np.linspace(0, coarse.shape[0] - 1, h)
    xs = np.linspace(0, coarse.shape[1] - 1, w)
    # Bilinear upsampling of a coarse grid: low-frequency colour variation.
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, coarse.shape[0] - 1), np.minimum(x0 + 1, coarse.shape[1] - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    blob = (
        coarse[y0][:, x0] * (1 - fy) * (1 - fx)
        + coarse[y0][:, x1] * (1 - fy) * fx
        + coarse[y1][:, x0] * fy * (1 - fx)
        + coarse[y1][:, x1] * fy * fx
    )
    folds = 12 * np.sin(np.arange(w) * 2 * np.pi / rng.uniform(8, 20) + rng.uniform(0, 6))
    img = base + blob + folds[None, :, None] + rng.normal(0, 4, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.float32)


def render_figure(
    positions: Mapping[str, np.ndarray],
    hidden: Mapping[str, np.ndarray],
    style: FigureStyle,
    background: np.ndarray,
    rng: np.random.Generator,
    project: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Paint the figure over the background, frame by frame.

    Args:
        positions: joint name -> ``(n, 3)`` body-unit positions (x right, y down).
        hidden: side (``"r"``/``"l"``) -> ``(n,)`` bool: that hand is out of view
            (behind the back), so its forearm and hand are not drawn.
        style: colours and the body-unit -> pixel mapping.
        background: ``(H, W, 3)`` float32 background (:func:`render_background`).
        rng: random generator for sensor noise.
        project: body units ``(n, 3)`` -> skeleton-image pixels ``(n, 2)``, the same
            projection the skeleton files use; ``None``: ``origin + scale * (x, y)``
            (orthographic, iMiGUE's OpenPose pixels). ``style.scale`` still sets the
            limbs' thickness.

    Returns:
        ``(n, H, W, 3)`` uint8 RGB frames.
    """
    n = len(next(iter(positions.values())))
    h, w = background.shape[:2]
    # Body units -> skeleton image pixels -> video pixels.
    k = w / style.image_size[1]
    if project is None:
        px = {
            n: (np.asarray(style.origin) + style.scale * p[:, :2]) * k for n, p in positions.items()
        }
    else:
        px = {name: project(p) * k for name, p in positions.items()}
    unit = style.scale * k
    frames = np.empty((n, h, w, 3), np.uint8)
    # Sensor noise from a small bank of noise frames, picked at random per frame: drawing
    # fresh Gaussian noise for every pixel of every frame dominated the rendering time.
    bank = rng.standard_normal((8, h, w, 3), dtype=np.float32) * 2.0
    background = background.astype(np.float32) + 0.5  # + 0.5: round, not floor, at the end
    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        img = np.broadcast_to(background, (hi - lo, h, w, 3)).copy()
        segments = [*_LEGS, *_TORSO, *_HEAD]
        for a, b, r, c in segments:
            _capsule(img, px[a][lo:hi], px[b][lo:hi], r * unit, style.colours[c], None)
        if style.desk:
            top = round((style.origin[1] + 0.95 * style.scale) * k)
            img[:, max(top, 0) :] = style.colours["desk"]
        for s in "rl":
            for a, b, r, c in _ARM:
                a, b = a.format(s=s), b.format(s=s)
                visible = None
                if b.split("_", 1)[1] in _HAND_PARTS or a.split("_", 1)[1] in _HAND_PARTS:
                    visible = ~hidden[s][lo:hi]
                _capsule(img, px[a][lo:hi], px[b][lo:hi], r * unit, style.colours[c], visible)
        # Sensor noise and a slight exposure flicker, as a real camera has.
        gain = (1.0 + rng.normal(0, 0.01, (hi - lo, 1, 1, 1))).astype(np.float32)
        img *= gain
        img += bank[rng.integers(0, len(bank), hi - lo)]
        np.clip(img, 0, 255, out=img)
        frames[lo:hi] = img.astype(np.uint8)
    return frames


def _capsule(
    img: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    radius: float,
    colour: tuple[int, int, int],
    visible: np.ndarray | None,
) -> None:
    """Paint an anti-aliased capsule from ``a`` to ``b`` in every frame (in place).

    Args:
        img: ``(n, H, W, 3)`` float frames.
        a: ``(n, 2)`` pixel ``(x, y)`` of one end.
        b: ``(n, 2)`` pixel ``(x, y)`` of the other end (= ``a`` for a disc).
        radius: capsule radius in pixels.
        colour: RGB fill.
        visible: ``(n,)`` bool, frames where the capsule is drawn (``None``: all).
    """
    h, w = img.shape[1:3]
    radius = max(radius, 0.6)  # never thinner than a pixel
    pts = np.concatenate([a, b], 0)
    x0 = int(np.floor(pts[:, 0].min() - radius - 1))
    x1 = int(np.ceil(pts[:, 0].max() + radius + 1))
    y0 = int(np.floor(pts[:, 1].min() - radius - 1))
    y1 = int(np.ceil(pts[:, 1].max() + radius + 1))
    x0, x1, y0, y1 = max(x0, 0), min(x1, w), max(y0, 0), min(y1, h)
    if x0 >= x1 or y0 >= y1:
        return
    gx = np.arange(x0, x1, dtype=np.float32)[None, None, :]
    gy = np.arange(y0, y1, dtype=np.float32)[None, :, None]
    ax, ay = a[:, 0, None, None], a[:, 1, None, None]
    dx, dy = (b - a)[:, 0, None, None], (b - a)[:, 1, None, None]
    len2 = np.maximum(dx * dx + dy * dy, 1e-9)
    t = np.clip(((gx - ax) * dx + (gy - ay) * dy) / len2, 0.0, 1.0)
    dist = np.hypot(gx - ax - t * dx, gy - ay - t * dy)
    alpha = np.clip(radius + 0.5 - dist, 0.0, 1.0)[..., None]  # 1-pixel soft edge
    if visible is not None:
        alpha = alpha * visible[:, None, None, None]
    patch = img[:, y0:y1, x0:x1]
    patch += alpha * (np.asarray(colour, np.float32) - patch)
