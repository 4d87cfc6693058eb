"""Procedural RGB-D renderer behind the synthetic source: a parametric head in a small scene.

No real RGB-D or video expression dataset can be downloaded, so the demo/test data is drawn
here. A head is an ellipsoid (jaw taper per identity) carrying a relief of facial features
(brow ridge, eye sockets, nose, cheeks, lips, chin) whose positions move with action-unit-like
expression parameters. Because the expression deforms the *geometry* and the colour comes from
shading that geometry, both the depth map and the colour image carry the expression; light
only reaches the colour image, which is what lets a study show depth's robustness to light.

Rendering is vectorised numpy: the head surface is sampled on a dense latitude/longitude grid
and splatted into a z-buffer (each pixel averages the points of its nearest surface); the
neck, shoulders and wall are ray-cast analytically. Coordinates are millimetres in a world
frame equal to the colour camera's, with X right, Y up and Z the depth along the optical axis.
Pixel (u, v) has its centre at integer coordinates (the OpenCV convention), v growing down.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

# Action-unit-like deformations (FACS numbers in the comments). Values are in [0, ~1.2].
AU_NAMES: tuple[str, ...] = (
    "brow_inner",  # AU1 inner brow raiser
    "brow_outer",  # AU2 outer brow raiser
    "brow_lower",  # AU4 brow lowerer (and draws the brows together)
    "lid_raise",  # AU5 upper lid raiser
    "lid_droop",  # AU41/43 lid droop
    "lid_tighten",  # AU7 lid tightener
    "cheek_raise",  # AU6 cheek raiser
    "nose_wrinkle",  # AU9 nose wrinkler
    "upper_lip_raise",  # AU10 upper lip raiser
    "corner_pull",  # AU12 lip corner puller (both sides)
    "dimpler",  # AU14 unilateral dimpler / corner pull (contempt), side in ``side``
    "corner_depress",  # AU15 lip corner depressor
    "chin_raise",  # AU17 chin raiser
    "lip_stretch",  # AU20 lip stretcher
    "lip_press",  # AU23/24 lip tightener / presser
    "jaw_drop",  # AU26/27 jaw drop / mouth stretch
)

# Apex deformation of each canonical category (prototypes after Ekman & Friesen's EMFACS).
PROTOTYPES: dict[str, dict[str, float]] = {
    "anger": {"brow_lower": 1.0, "lid_tighten": 0.8, "lid_raise": 0.25, "lip_press": 1.0,
              "chin_raise": 0.5, "upper_lip_raise": 0.2},
    "contempt": {"dimpler": 1.1, "lid_tighten": 0.2},
    "disgust": {"nose_wrinkle": 1.0, "upper_lip_raise": 1.0, "brow_lower": 0.45,
                "corner_depress": 0.45, "chin_raise": 0.4, "lid_tighten": 0.4,
                "cheek_raise": 0.3},
    "fear": {"brow_inner": 1.0, "brow_outer": 0.6, "brow_lower": 0.6, "lid_raise": 1.0,
             "lip_stretch": 1.0, "jaw_drop": 0.45},
    "happiness": {"cheek_raise": 1.0, "corner_pull": 1.0, "jaw_drop": 0.25, "lid_tighten": 0.2},
    "neutral": {},
    "sadness": {"brow_inner": 1.0, "brow_lower": 0.5, "corner_depress": 1.0, "chin_raise": 0.6,
                "lid_droop": 0.5},
    "surprise": {"brow_inner": 1.0, "brow_outer": 1.0, "lid_raise": 0.9, "jaw_drop": 1.0},
}

LIGHT_LEVELS: tuple[str, ...] = ("dark", "normal", "bright")
# Exposure factor ranges per light level: "dark" puts the face a few grey levels above black
# (then sensor noise dominates), "bright" clips most of the lit skin at white.
EXPOSURE_RANGES: dict[str, tuple[float, float]] = {
    "dark": (0.003, 0.012),
    "normal": (0.7, 1.4),
    "bright": (8.0, 25.0),
}
POSE_RANGE_DEG: tuple[float, float, float] = (20.0, 12.0, 10.0)  # |yaw|, |pitch|, |roll| max
FACE_FRACTION: float = 0.72  # chin-to-crown height / frame height at the mean head distance
HEAD_DISTANCE_MM: tuple[float, float] = (560.0, 700.0)
_MEAN_DISTANCE_MM = 630.0
_HEAD_HEIGHT_MM = 215.0
_BASE_GAIN = 1.6  # maps a mid-grey lit skin patch to mid grey at exposure 1
_GAMMA = 1.0 / 2.2


@dataclass(frozen=True)
class Identity:
    """One synthetic person: head shape, feature layout, colours and resting face."""

    radii: tuple[float, float, float]  # half width, half height, half depth (mm)
    jaw_taper: float
    eye_x: float
    eye_y: float
    eye_w: float
    eye_h: float
    brow_y: float
    nose_tip_y: float
    nose_height: float
    mouth_y: float
    mouth_w: float
    lip_upper: float
    lip_lower: float
    hairline: float
    skin: np.ndarray  # linear RGB albedo
    hair: np.ndarray
    iris: np.ndarray
    lips: np.ndarray
    blotch: np.ndarray  # (3, 3): frequency x, frequency y, phase of skin-tone variation
    rest: dict[str, float] = field(default_factory=dict)  # resting AU offsets


@dataclass(frozen=True)
class Scene:
    """Everything about one shot except the face: pose, placement, light, background, body."""

    yaw: float
    pitch: float
    roll: float
    head_pos: np.ndarray  # head centre, world mm
    light_dir: np.ndarray  # unit vector from the surface towards the light
    light_rgb: np.ndarray
    ambient: float
    exposure: float
    wall_depth: float
    wall_tilt: tuple[float, float]
    wall_albedo: np.ndarray
    wall_pattern: np.ndarray  # (4,): two spatial frequencies and two phases
    cloth: np.ndarray
    shoulder: float  # torso half width (mm)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: world-to-camera rotation, centre, intrinsics and its own sensor."""

    size: int
    focal: float
    rotation: np.ndarray  # world -> camera
    origin: np.ndarray  # camera centre in world mm
    wb: np.ndarray  # white-balance gains per channel
    gain: float  # exposure multiplier relative to the scene exposure
    blur: float  # optical blur sigma in pixels

    @property
    def centre(self) -> float:
        return (self.size - 1) / 2.0


@dataclass(frozen=True)
class Frame:
    """One rendered view: RGB uint8 image, depth uint16 (mm, 0 = hole) and eye centres."""

    color: np.ndarray
    depth: np.ndarray | None
    eyes: tuple[float, float, float, float]  # lx, ly, rx, ry (image-left eye first)


# ----------------------------------------------------------------------------- sampling


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw a person: proportions, skin tone (light to dark), hair and iris colour."""
    a = rng.uniform(70.0, 82.0)
    b = rng.uniform(102.0, 114.0)
    c = rng.uniform(90.0, 100.0)
    tone = rng.uniform(0.0, 1.0)
    light_skin = np.array([0.62, 0.42, 0.33])
    dark_skin = np.array([0.13, 0.075, 0.05])
    skin = (1 - tone) * light_skin + tone * dark_skin
    skin = skin * rng.uniform(0.92, 1.08, size=3)
    hair_choices = np.array([[0.02, 0.015, 0.012], [0.09, 0.05, 0.025], [0.25, 0.14, 0.06],
                             [0.45, 0.33, 0.16], [0.3, 0.08, 0.03]])
    hair = hair_choices[rng.integers(len(hair_choices))] * rng.uniform(0.8, 1.2)
    iris_choices = np.array([[0.09, 0.045, 0.02], [0.05, 0.09, 0.16], [0.08, 0.1, 0.05]])
    iris = iris_choices[rng.integers(len(iris_choices))]
    lips = skin * np.array([1.05, 0.62, 0.62]) * rng.uniform(0.85, 1.0)
    blotch = np.stack([rng.uniform(0.03, 0.09, 3), rng.uniform(0.03, 0.09, 3),
                       rng.uniform(0, 2 * np.pi, 3)])
    rest = {
        "brow_inner": rng.uniform(0.0, 0.15),
        "brow_lower": rng.uniform(0.0, 0.15),
        "corner_pull": rng.uniform(0.0, 0.12),
        "corner_depress": rng.uniform(0.0, 0.12),
        "lid_droop": rng.uniform(0.0, 0.2),
    }
    return Identity(
        radii=(a, b, c),
        jaw_taper=rng.uniform(0.22, 0.38),
        eye_x=rng.uniform(29.0, 34.0),
        eye_y=rng.uniform(6.0, 12.0),
        eye_w=rng.uniform(11.5, 13.5),
        eye_h=rng.uniform(4.0, 5.0),
        brow_y=rng.uniform(14.0, 18.0),
        nose_tip_y=rng.uniform(-27.0, -20.0),
        nose_height=rng.uniform(17.0, 23.0),
        mouth_y=rng.uniform(-53.0, -46.0),
        mouth_w=rng.uniform(21.0, 26.0),
        lip_upper=rng.uniform(5.5, 7.5),
        lip_lower=rng.uniform(7.0, 9.5),
        hairline=rng.uniform(50.0, 62.0),
        skin=skin,
        hair=hair,
        iris=iris,
        lips=lips,
        blotch=blotch,
        rest=rest,
    )


def expression_units(label: str, intensity: float, rng: np.random.Generator,
                     identity: Identity) -> dict[str, float]:
    """AU values of ``label`` at ``intensity`` (0 = neutral, 1 = apex), jittered per sample.

    The jitter (each AU scaled by ~N(1, 0.15), plus a little of every AU) and the identity's
    resting face keep the categories from being perfectly separable.
    """
    proto = PROTOTYPES[label]
    units = {}
    for name in AU_NAMES:
        value = proto.get(name, 0.0) * intensity * rng.normal(1.0, 0.15)
        value += abs(rng.normal(0.0, 0.05)) + identity.rest.get(name, 0.0)
        units[name] = float(np.clip(value, 0.0, 1.3))
    units["side"] = float(rng.choice([-1.0, 1.0]))
    return units


def blend_units(units: dict[str, float], rest: dict[str, float], t: float) -> dict[str, float]:
    """Interpolate from ``rest`` (t = 0) to ``units`` (t = 1); the contempt side is kept."""
    out = {k: (1 - t) * rest.get(k, 0.0) + t * units[k] for k in AU_NAMES}
    out["side"] = units["side"]
    return out


def light_direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector towards a light at ``azimuth`` (right of camera +) and ``elevation`` (up +)."""
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    return np.array([np.sin(az) * np.cos(el), np.sin(el), -np.cos(az) * np.cos(el)])


def sample_scene(rng: np.random.Generator, light_level: str) -> Scene:
    """Draw pose, placement, light (for ``light_level``), wall and clothing of one shot."""
    yaw, pitch, roll = (rng.uniform(-r, r) for r in POSE_RANGE_DEG)
    z = rng.uniform(*HEAD_DISTANCE_MM)
    # Head centre slightly above the image centre so chin, neck and shoulders fit below.
    head = np.array([rng.uniform(-0.05, 0.05) * z, rng.uniform(0.0, 0.08) * z, z])
    lo, hi = EXPOSURE_RANGES[light_level]
    exposure = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    warmth = rng.uniform(-0.12, 0.12)
    return Scene(
        yaw=float(yaw), pitch=float(pitch), roll=float(roll),
        head_pos=head,
        light_dir=light_direction(rng.uniform(-60, 60), rng.uniform(-20, 50)),
        light_rgb=np.array([1.0 + warmth, 1.0, 1.0 - warmth]),
        ambient=float(rng.uniform(0.12, 0.3)),
        exposure=exposure,
        wall_depth=float(z + rng.uniform(500.0, 1300.0)),
        wall_tilt=(float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-0.15, 0.15))),
        wall_albedo=rng.uniform(0.08, 0.55, size=3),
        wall_pattern=np.array([rng.uniform(0.005, 0.03), rng.uniform(0.005, 0.03),
                               rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)]),
        cloth=rng.uniform(0.03, 0.5, size=3),
        shoulder=float(rng.uniform(170.0, 210.0)),
    )


def focal_length(size: int) -> float:
    """Focal length (pixels) that makes the head ``FACE_FRACTION`` of the frame on average."""
    return FACE_FRACTION * size * _MEAN_DISTANCE_MM / _HEAD_HEIGHT_MM


def main_camera(size: int, rng: np.random.Generator) -> Camera:
    """The RGB-D sensor's colour camera, registered with the depth map (world = its frame)."""
    return Camera(size=size, focal=focal_length(size), rotation=np.eye(3), origin=np.zeros(3),
                  wb=rng.uniform(0.95, 1.05, size=3), gain=1.0, blur=0.5)


def offset_camera(size: int, rng: np.random.Generator, distance: float) -> Camera:
    """The separate 2-D camera: 25-45 mm beside the sensor, its axis crossing the sensor's at
    ``distance`` (so the face lands near the same place), with its own sensor settings."""
    side = rng.choice([-1.0, 1.0])
    origin = np.array([side * rng.uniform(25.0, 45.0), rng.uniform(-15.0, 15.0), 0.0])
    forward = np.array([0.0, 0.0, distance]) - origin
    forward /= np.linalg.norm(forward)
    right = np.cross(np.array([0.0, 1.0, 0.0]), forward)
    right /= np.linalg.norm(right)
    up = np.cross(forward, right)
    rotation = rotation_matrix(0.0, 0.0, rng.uniform(-3.0, 3.0)) @ np.stack([right, up, forward])
    return Camera(size=size, focal=focal_length(size) * rng.uniform(0.93, 1.07),
                  rotation=rotation, origin=origin,
                  wb=np.array([rng.uniform(0.78, 1.22), 1.0, rng.uniform(0.78, 1.22)]),
                  gain=float(rng.uniform(0.6, 1.6)), blur=float(rng.uniform(0.4, 0.9)))


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World rotation for a head pose in degrees: yaw about Y, pitch about X, roll about Z.

    Positive yaw turns the face towards image right, positive pitch tilts it up, positive
    roll tilts the crown towards image left (counter-clockwise in the image).
    """
    y, p, r = np.deg2rad([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


# ----------------------------------------------------------------------------- geometry


def _smooth(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


class _Canvas:
    """The face's relief (mm, out of the face) and albedo on a regular head-frame (x, y) grid.

    Features are drawn into windows of the grid (slices around each feature), where the
    coordinates broadcast as a row (x) and a column (y), so a Gaussian costs an outer
    product over its own window rather than work over every surface point.
    """

    def __init__(self, ident: Identity, res: float) -> None:
        a, b, _ = ident.radii
        self.res = res
        self.x = np.arange(-a - 2 * res, a + 2 * res, res, dtype=np.float32)
        self.y = np.arange(-b - 26.0, b + 2 * res, res, dtype=np.float32)
        self.h = np.zeros((self.y.size, self.x.size), np.float32)
        bl = ident.blotch
        xx, yy = self.x[None, :], self.y[:, None]
        tone = sum(np.sin(bl[0, i] * xx + bl[1, i] * yy + bl[2, i]) for i in range(3)) / 3.0
        self.alb = (ident.skin.astype(np.float32) * (1.0 + 0.07 * tone)[..., None])

    def window(self, x0: float, x1: float, y0: float,
               y1: float) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
        """Slices of the grid covering [x0, x1] x [y0, y1], with its x row and y column."""
        ix0, ix1 = np.searchsorted(self.x, [x0, x1])
        iy0, iy1 = np.searchsorted(self.y, [y0, y1])
        sl = (slice(iy0, iy1), slice(ix0, ix1))
        return sl, self.x[None, ix0:ix1], self.y[iy0:iy1, None]

    def bump(self, amp: float, cx: float, cy: float, sx: float, sy: float) -> None:
        """Add a Gaussian bump (negative ``amp``: a dent), cut off at 3 sigma."""
        sl, x, y = self.window(cx - 3 * sx, cx + 3 * sx, cy - 3 * sy, cy + 3 * sy)
        self.h[sl] += amp * (np.exp(-0.5 * ((y - cy) / sy) ** 2)
                             * np.exp(-0.5 * ((x - cx) / sx) ** 2))

    def paint(self, sl: tuple[slice, slice], alpha: np.ndarray, color: np.ndarray) -> None:
        """Blend ``color`` over the window with per-cell opacity ``alpha``."""
        a = np.asarray(alpha, np.float32)[..., None]
        self.alb[sl] = self.alb[sl] * (1 - a) + np.asarray(color, np.float32) * a

    def sample(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bilinear relief and albedo (..., 3) at head-frame points (x, y of up to 2 dims)."""
        stack = np.concatenate([self.h[..., None], self.alb], axis=-1)
        shape = x.shape if x.ndim == 2 else (1, -1)
        mx = ((x - self.x[0]) / self.res).astype(np.float32).reshape(shape)
        my = ((y - self.y[0]) / self.res).astype(np.float32).reshape(shape)
        out = cv2.remap(stack, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out = out.reshape(*x.shape, 4)
        return out[..., 0], out[..., 1:]


def _mouth_geometry(ident: Identity, au: dict[str, float], x: np.ndarray) -> dict[str, np.ndarray]:
    """Lip line, opening and half widths of the mouth along the x row ``x``."""
    side = au["side"]
    corner = {}
    width = {}
    for s in (-1.0, 1.0):
        uni = au["dimpler"] if s == side else 0.0
        corner[s] = (10.0 * au["corner_pull"] + 10.0 * uni - 9.0 * au["corner_depress"]
                     - 1.0 * au["lip_stretch"])
        width[s] = ident.mouth_w * (1 + 0.25 * au["corner_pull"] + 0.3 * au["lip_stretch"]
                                    - 0.12 * au["lip_press"] + 0.08 * uni
                                    - 0.12 * au["jaw_drop"] * (1 - au["corner_pull"]))
    left = x < 0
    half = np.where(left, width[-1.0], width[1.0])
    lift = np.where(left, corner[-1.0], corner[1.0])
    q = np.clip(np.abs(x) / half, 0.0, 1.2)
    inside = np.clip(1.0 - q * q, 0.0, 1.0)
    line = ident.mouth_y + lift * q * q
    gap = jaw_gap(au)
    opening = gap * np.sqrt(inside)
    raise_up = 3.0 * au["upper_lip_raise"] * inside
    corners = {s: (s * width[s], ident.mouth_y + corner[s]) for s in (-1.0, 1.0)}
    return {"q": q, "inside": inside, "line": line, "opening": opening, "raise": raise_up,
            "corners": corners}


def jaw_gap(au: dict[str, float]) -> float:
    """How far (mm) the lips part at the centre: jaw drop, plus a little for a raised lip."""
    return 22.0 * au["jaw_drop"] + 3.0 * au["upper_lip_raise"] * au["nose_wrinkle"]


def _face_canvas(ident: Identity, au: dict[str, float], res: float) -> _Canvas:
    """Draw every facial feature of ``ident`` under expression ``au`` into a canvas."""
    cv = _Canvas(ident, res)
    ex, ey = ident.eye_x, ident.eye_y
    cheek_y = -18.0 + 7.0 * au["cheek_raise"]
    for s in (-1.0, 1.0):
        cv.bump(3.5, s * 28.0, ey + ident.brow_y - 1.0, 17.0, 6.0)  # brow ridge
        cv.bump(-7.0, s * ex, ey + 1.0, 13.0, 9.0)  # eye socket
        cv.bump(5.0, s * ex, ey, 9.0, 7.0)  # eyeball
        cv.bump(4.5 + 5.0 * au["cheek_raise"], s * 36.0, cheek_y, 14.0, 12.0)
        sl, x, y = cv.window(s * 36.0 - 30, s * 36.0 + 30, cheek_y - 25, cheek_y + 25)
        blush = 0.08 * np.exp(-0.5 * (((x - s * 36.0) / 12.0) ** 2 + ((y - cheek_y) / 10.0) ** 2))
        cv.alb[sl] *= 1.0 + blush[..., None] * np.array([1.0, -0.6, -0.6], np.float32)
    _add_nose(ident, au, cv)
    _add_mouth(ident, au, cv)
    _add_eyes(ident, au, cv)
    _add_brows(ident, au, cv)
    return cv


def _add_nose(ident: Identity, au: dict[str, float], cv: _Canvas) -> None:
    bridge = ident.eye_y + 2.0
    tip = ident.nose_tip_y
    sl, x, y = cv.window(-30.0, 30.0, tip - 15.0, bridge + 12.0)
    t = np.clip((bridge - y) / (bridge - tip), 0.0, 1.0)
    height = 3.0 + (ident.nose_height - 3.0) * t ** 1.6
    sigma = 4.5 + 4.5 * t
    cut_below = 1.0 / (1.0 + np.exp(-(y - (tip - 4.0)) / 1.8))
    fade_above = _smooth((bridge + 10.0 - y) / 10.0)
    cv.h[sl] += height * np.exp(-0.5 * (x / sigma) ** 2) * cut_below * fade_above
    wrinkle = au["nose_wrinkle"]
    wing_y = tip - 2.0 + 3.0 * wrinkle
    for s in (-1.0, 1.0):
        cv.bump(6.0, s * (11.0 + 1.5 * wrinkle), wing_y, 5.0, 4.5)
        ny = tip - 5.0 + 2.0 * wrinkle
        sl_n, xn, yn = cv.window(s * 5.5 - 8, s * 5.5 + 8, ny - 5, ny + 5)
        nostril = np.exp(-0.5 * (((xn - s * 5.5) / 2.5) ** 2 + ((yn - ny) / 1.6) ** 2))
        cv.alb[sl_n] *= (1.0 - 0.7 * nostril)[..., None]
        # Nasolabial fold: a groove from the nose wing to past the mouth corner.
        fold = 0.8 + 3.5 * min(1.0, au["cheek_raise"] + 0.7 * au["corner_pull"]
                               + 0.8 * au["upper_lip_raise"])
        _groove(cv, (s * 14.0, wing_y - 2.0),
                (s * (ident.mouth_w + 6.0), ident.mouth_y - 6.0), depth=fold)
    # Horizontal wrinkles across the bridge (AU9).
    if wrinkle > 0:
        cy = ident.eye_y - 7.0
        sl, x, y = cv.window(-27.0, 27.0, cy - 21.0, cy + 21.0)
        band = np.exp(-0.5 * ((x / 9.0) ** 2 + ((y - cy) / 7.0) ** 2))
        cv.h[sl] += 1.3 * wrinkle * band * np.sin(2 * np.pi * y / 4.5)


def _groove(cv: _Canvas, p0: tuple[float, float], p1: tuple[float, float],
            depth: float) -> None:
    sl, x, y = cv.window(min(p0[0], p1[0]) - 8, max(p0[0], p1[0]) + 8,
                         min(p0[1], p1[1]) - 8, max(p0[1], p1[1]) + 8)
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    t = ((x - p0[0]) * dx + (y - p0[1]) * dy) / (dx * dx + dy * dy)
    tc = np.clip(t, 0.0, 1.0)
    dist2 = (x - p0[0] - tc * dx) ** 2 + (y - p0[1] - tc * dy) ** 2
    ends = _smooth(t / 0.2) * _smooth((1.0 - t) / 0.2)
    cv.h[sl] -= depth * np.exp(-0.5 * dist2 / 2.5**2) * ends


def _add_mouth(ident: Identity, au: dict[str, float], cv: _Canvas) -> None:
    gap = jaw_gap(au)
    reach = ident.mouth_w * 1.5
    sl, x, y = cv.window(-reach, reach, ident.mouth_y - gap - 25.0, ident.mouth_y + 20.0)
    m = _mouth_geometry(ident, au, x)
    inside, line = m["inside"], m["line"]
    across = _smooth((1.0 - m["q"]) / 0.12)
    upper_edge = line + m["raise"]
    lower_edge = line - m["opening"]
    thick_u = ident.lip_upper * (1 - 0.55 * au["lip_press"]) * np.sqrt(inside) + 0.8
    thick_l = ident.lip_lower * (1 - 0.5 * au["lip_press"]) * np.sqrt(inside) + 0.8
    du = y - upper_edge
    dl = lower_edge - y
    upper = np.exp(-0.5 * ((du - thick_u / 2) / (thick_u / 2 + 0.6)) ** 2) * across
    lower = np.exp(-0.5 * ((dl - thick_l / 2) / (thick_l / 2 + 0.6)) ** 2) * across
    press = 1.0 - 0.4 * au["lip_press"]
    h = ((3.0 + 1.5 * au["upper_lip_raise"]) * press * upper
         + (3.5 + 2.0 * au["chin_raise"]) * press * lower)
    upper_mask = _smooth(du / 0.8) * _smooth((thick_u - du) / 0.8) * across
    lower_mask = _smooth(dl / 0.8) * _smooth((thick_l - dl) / 0.8) * across
    cv.paint(sl, np.clip(upper_mask + lower_mask, 0.0, 1.0), ident.lips)
    # Open mouth: a dark cavity with the upper teeth showing below the upper lip.
    cavity = _smooth(-du / 0.7) * _smooth(-dl / 0.7) * across * (m["opening"] > 0.3)
    teeth_band = np.minimum(m["opening"] + m["raise"], 5.0) * (np.abs(x) < 0.8 * ident.mouth_w)
    teeth = cavity * _smooth((teeth_band + du) / 0.6)
    h -= 16.0 * cavity * (1 - teeth) + 5.0 * teeth
    cv.h[sl] += h
    cv.paint(sl, cavity * (1 - teeth), np.array([0.06, 0.015, 0.015]))
    cv.paint(sl, teeth, np.array([0.72, 0.68, 0.6]))
    # Chin boss, pushed up and forward by the chin raiser, moved down with the jaw.
    cv.bump(3.0 + 4.0 * au["chin_raise"], 0.0, ident.mouth_y - 30.0 - gap, 14.0, 9.0)
    # Pulled corners sink back into the cheeks (a smile or the contempt dimple).
    for s, (cx, cy) in m["corners"].items():
        pull = au["corner_pull"] + (au["dimpler"] if s == au["side"] else 0.0)
        if pull > 0:
            cv.bump(-3.5 * pull, cx, cy, 4.5, 4.5)
    if au["dimpler"] > 0:
        cx, cy = m["corners"][au["side"]]
        cv.bump(-3.0 * au["dimpler"], cx + au["side"] * 5.0, cy, 3.0, 4.0)


def eyelids(ident: Identity, au: dict[str, float]) -> tuple[float, float]:
    """Heights (mm) of the upper and lower lid edges above/below the eye centre."""
    up = ident.eye_h * (1 + 0.8 * au["lid_raise"] - 0.45 * au["lid_tighten"]
                        - 0.5 * au["lid_droop"] - 0.2 * au["cheek_raise"])
    low = 0.85 * ident.eye_h * (1 + 0.3 * au["lid_raise"] - 0.5 * au["lid_tighten"]
                                - 0.6 * au["cheek_raise"])
    return max(up, 0.6), max(low, 0.4)


_SCLERA = np.array([0.7, 0.67, 0.62], np.float32)


def _add_eyes(ident: Identity, au: dict[str, float], cv: _Canvas) -> None:
    up, low = eyelids(ident, au)
    ey = ident.eye_y
    for s in (-1.0, 1.0):
        cx = s * ident.eye_x
        sl, x, y = cv.window(cx - ident.eye_w - 2, cx + ident.eye_w + 2, ey - low - 7,
                             ey + up + 7)
        r = (x - cx) / ident.eye_w
        inside = np.sqrt(np.clip(1.0 - r * r, 0.0, 1.0))
        top = ey + up * inside
        bottom = ey - low * inside
        aperture = _smooth((top - y) / 0.5) * _smooth((y - bottom) / 0.5) * (inside > 0)
        cv.h[sl] -= 2.5 * aperture
        rho = np.hypot(x - cx, y - ey)
        iris = _smooth((5.2 - rho) / 0.5)
        pupil = _smooth((2.2 - rho) / 0.4)
        eye_col = (_SCLERA * (1 - iris[..., None])
                   + ident.iris.astype(np.float32) * (iris - pupil)[..., None]
                   + 0.008 * pupil[..., None])
        a = aperture[..., None]
        cv.alb[sl] = cv.alb[sl] * (1 - a) + eye_col * a
        lash = np.exp(-0.5 * ((y - top) / 0.7) ** 2) * (inside > 0.05)
        cv.alb[sl] *= (1.0 - 0.75 * lash)[..., None]
        cv.bump(1.2, cx, ey + up + 2.0, ident.eye_w * 0.8, 1.6)  # upper lid fold
        if au["lid_tighten"] > 0:
            cv.bump(1.0 * au["lid_tighten"], cx, ey - low - 2.0, ident.eye_w * 0.8, 1.5)


def brow_curve(ident: Identity, au: dict[str, float], x: np.ndarray) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """Height (mm) of the eyebrow centre line at ``x`` and the along-brow coordinate u."""
    inward = 5.0 * au["brow_lower"]
    u = (np.abs(x) - 13.0 + inward) / 36.0
    uc = np.clip(u, 0.0, 1.0)
    arch = 3.0 * np.sin(np.pi * np.clip(0.2 + 0.8 * uc, 0, 1))
    lift = (10.0 * au["brow_inner"] * (1 - uc) + 9.0 * au["brow_outer"] * uc
            - 7.0 * au["brow_lower"] * (1 - 0.5 * uc) - 3.0 * au["nose_wrinkle"] * (1 - uc))
    return ident.eye_y + ident.brow_y + arch + lift, u


def _add_brows(ident: Identity, au: dict[str, float], cv: _Canvas) -> None:
    base = ident.eye_y + ident.brow_y
    sl, x, y = cv.window(-55.0, 55.0, base - 12.0, base + 20.0)
    centre, u = brow_curve(ident, au, x)
    along = _smooth(u / 0.12) * _smooth((1.0 - u) / 0.2)
    band = np.exp(-0.5 * ((y - centre) / 2.2) ** 2) * along
    cv.h[sl] += 3.0 * band
    cv.paint(sl, np.clip(1.3 * band, 0.0, 0.92), ident.hair)
    # Forehead wrinkles (AU1/AU2) and the vertical frown lines between the brows (AU4).
    raise_ = 0.5 * (au["brow_inner"] + au["brow_outer"])
    if raise_ > 0:
        cy = base + 24.0
        sl, x, y = cv.window(-60.0, 60.0, cy - 20.0, cy + 20.0)
        forehead = np.exp(-0.5 * ((x / 30.0) ** 2 + ((y - cy) / 9.0) ** 2))
        cv.h[sl] += 0.9 * raise_ * forehead * np.sin(2 * np.pi * y / 6.5)
    if au["brow_lower"] > 0:
        for s in (-1.0, 1.0):
            cv.bump(-1.8 * au["brow_lower"], s * 4.0, base - 2.0, 1.4, 5.0)
        cv.bump(3.0 * au["brow_lower"], 0.0, base - 2.0, 12.0, 5.0)


@dataclass
class HeadMesh:
    """Head surface samples in the head frame: points (N, 3), unit normals, linear albedo."""

    points: np.ndarray
    normals: np.ndarray
    albedo: np.ndarray
    eyes: np.ndarray  # (2, 3): the eye at head x < 0, then the other


def _grid_steps(ident: Identity, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    a, b, _ = ident.radii
    lon_max = np.deg2rad(115.0)  # the back of the head never faces the camera
    n_lon = int(np.ceil(2 * lon_max * a / spacing)) + 1
    n_lat = int(np.ceil(np.pi * b / spacing)) + 1
    lat = np.linspace(-np.pi / 2 + 0.05, np.pi / 2, n_lat, dtype=np.float32)
    lon = np.linspace(-lon_max, lon_max, n_lon, dtype=np.float32)
    return lat, lon


def _jaw_shift(ident: Identity, au: dict[str, float], x: np.ndarray, y: np.ndarray,
               front: np.ndarray) -> np.ndarray:
    """How far (mm) the jaw drop moves each point down: full below the lips, none above."""
    gap = jaw_gap(au)
    ramp = _smooth((ident.mouth_y + 2.0 - y) / 24.0)
    return gap * ramp * np.exp(-0.5 * (x / 45.0) ** 2) * front


def _front_weight(z0: np.ndarray, c: float) -> np.ndarray:
    """How much of the face relief applies: 1 on the face, fading to 0 towards the ears."""
    return _smooth((z0 / c - 0.35) / 0.45)


def build_head(ident: Identity, au: dict[str, float], spacing: float) -> HeadMesh:
    """Sample the deformed head surface every ``spacing`` mm (finer than a pixel)."""
    a, b, c = ident.radii
    lat, lon = _grid_steps(ident, spacing)
    phi, lam = np.meshgrid(lat, lon, indexing="ij")
    cos_phi = np.cos(phi)
    y0 = b * np.sin(phi)
    taper = 1.0 - ident.jaw_taper * _smooth(-y0 / b) ** 1.3
    x0 = a * cos_phi * np.sin(lam) * taper
    z0 = c * cos_phi * np.cos(lam)
    front = _front_weight(z0, c)
    canvas = _face_canvas(ident, au, spacing)
    y1 = y0 - _jaw_shift(ident, au, x0, y0, front) if jaw_gap(au) > 0 else y0
    relief, face_albedo = canvas.sample(x0, y1)
    z1 = z0 + front * relief
    # Off the face (front = 0) the canvas edge colour is replaced by plain skin.
    on_face = (front > 0)[..., None]
    albedo = np.where(on_face, face_albedo, ident.skin.astype(np.float32))
    points = np.stack([x0, y1, z1], axis=-1)
    albedo = _hair(ident, albedo, x0, y1, lam)
    normals = _grid_normals(points)
    return HeadMesh(points=points.reshape(-1, 3), normals=normals.reshape(-1, 3),
                    albedo=albedo.reshape(-1, 3), eyes=_eye_points(ident, canvas))


def _eye_points(ident: Identity, canvas: _Canvas) -> np.ndarray:
    """The two iris centres on the deformed surface, head frame (x < 0 first)."""
    a, b, c = ident.radii
    x = np.array([-ident.eye_x, ident.eye_x])
    y = np.array([ident.eye_y, ident.eye_y])
    z0 = c * np.sqrt(1.0 - (x / a) ** 2 - (y / b) ** 2)
    relief, _ = canvas.sample(x, y)
    z = z0 + _front_weight(z0, c) * relief
    return np.stack([x, y, z], axis=-1)


def _hair(ident: Identity, albedo: np.ndarray, x: np.ndarray, y: np.ndarray,
          lam: np.ndarray) -> np.ndarray:
    """Paint the scalp: a hairline across the forehead that drops to ear level at the sides."""
    a = ident.radii[0]
    side = _smooth((np.abs(lam) - np.deg2rad(55.0)) / np.deg2rad(30.0))
    line = ident.hairline + 8.0 * (x / a) ** 2
    line = line * (1 - side) + (-8.0) * side
    alpha = _smooth((y - line) / 4.0)[..., None]
    texture = 1.0 + 0.12 * np.sin(0.9 * x + 0.3 * y)[..., None]
    return albedo * (1 - alpha) + ident.hair * texture * alpha


def _grid_normals(points: np.ndarray) -> np.ndarray:
    d_lat = np.gradient(points, axis=0)
    d_lon = np.gradient(points, axis=1)
    n = np.cross(d_lon, d_lat)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = n / np.maximum(norm, 1e-9)
    # Orient outwards (the grid's handedness is irrelevant then).
    flip = np.sum(n * points, axis=-1, keepdims=True) < 0
    return np.where(flip, -n, n)


# ----------------------------------------------------------------------------- rendering

# Head frame (z = out of the face) to world frame (Z = away from the camera) when frontal.
_FLIP = np.diag([1.0, 1.0, -1.0])


def head_to_world(scene: Scene) -> np.ndarray:
    """3x3 linear part of the head-to-world transform for the scene's pose."""
    return rotation_matrix(scene.yaw, scene.pitch, scene.roll) @ _FLIP


def project(cam: Camera, points: np.ndarray) -> np.ndarray:
    """Pixel coordinates (u, v) and depth Z of world points, as an (N, 3) array."""
    pc = (points - cam.origin) @ cam.rotation.T
    z = pc[:, 2]
    u = cam.centre + cam.focal * pc[:, 0] / z
    v = cam.centre - cam.focal * pc[:, 1] / z
    return np.stack([u, v, z], axis=-1)


def _rays(cam: Camera) -> np.ndarray:
    """World direction of each pixel's ray, scaled so that t is the camera-frame depth Z."""
    idx = np.arange(cam.size, dtype=np.float64)
    u, v = np.meshgrid(idx, idx)
    d = np.stack([(u - cam.centre) / cam.focal, -(v - cam.centre) / cam.focal,
                  np.ones_like(u)], axis=-1)
    return d @ cam.rotation  # rotation.T applied to row vectors


def _shade(albedo: np.ndarray, normals: np.ndarray, scene: Scene) -> np.ndarray:
    lambert = np.clip(normals @ scene.light_dir, 0.0, None)
    light = scene.ambient + (1.0 - scene.ambient) * lambert
    return albedo * light[..., None] * scene.light_rgb


def _quadric_hit(o: np.ndarray, d: np.ndarray, centre: np.ndarray,
                 radii: np.ndarray) -> np.ndarray:
    """Nearest positive t where rays o + t d hit an axis-aligned ellipsoid (inf when none)."""
    oc = (o - centre) / radii
    dd = d / radii
    qa = np.sum(dd * dd, axis=-1)
    qb = 2 * np.sum(dd * oc, axis=-1)
    qc = np.sum(oc * oc) - 1.0
    disc = qb * qb - 4 * qa * qc
    t = (-qb - np.sqrt(np.clip(disc, 0, None))) / (2 * qa)
    return np.where((disc > 0) & (t > 0), t, np.inf)


def _background(cam: Camera, scene: Scene, ident: Identity) -> tuple[np.ndarray, np.ndarray]:
    """Depth (camera Z) and radiance of wall, shoulders and neck seen by ``cam``."""
    d = _rays(cam)
    o = cam.origin
    # Wall: plane Z = depth + tx X + ty Y (world), facing the camera.
    tx, ty = scene.wall_tilt
    denom = d[..., 2] - tx * d[..., 0] - ty * d[..., 1]
    t_wall = (scene.wall_depth + tx * o[0] + ty * o[1] - o[2]) / denom
    p = o + t_wall[..., None] * d
    fx, fy, px, py = scene.wall_pattern
    pattern = 1.0 + 0.3 * np.sin(fx * p[..., 0] + px) * np.sin(fy * p[..., 1] + py)
    wall_n = np.array([tx, ty, -1.0]) / np.sqrt(1 + tx * tx + ty * ty)
    radiance = _shade(scene.wall_albedo * pattern[..., None],
                      np.broadcast_to(wall_n, d.shape), scene)
    depth = t_wall
    # Torso (wide ellipsoid below the head) and neck (ellipsoid column under the chin).
    head = scene.head_pos
    b = ident.radii[1]
    torso_c = np.array([head[0], head[1] - b - 150.0, head[2] + 45.0])
    torso_r = np.array([scene.shoulder, 120.0, 100.0])
    neck_c = np.array([head[0], head[1] - b - 20.0, head[2] + 15.0])
    neck_r = np.array([0.62 * ident.radii[0], 110.0, 0.6 * ident.radii[0]])
    for centre, radii, albedo in ((torso_c, torso_r, scene.cloth), (neck_c, neck_r,
                                                                      ident.skin * 0.9)):
        t = _quadric_hit(o, d, centre, radii)
        hit = t < depth
        if not hit.any():
            continue
        p = o + t[hit][:, None] * d[hit]
        n = (p - centre) / radii**2
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        radiance[hit] = _shade(np.broadcast_to(albedo, n.shape), n, scene)
        depth = np.where(hit, t, depth)
    return depth, radiance


_SURFACE_MM = 5.0  # points this close behind a pixel's nearest point belong to its surface


def _splat(cam: Camera, points: np.ndarray, values: np.ndarray,
           normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer the visible points: per pixel the depth and value of the front surface.

    Each pixel averages every point of the nearest surface that lands in it (a box filter),
    not just the single nearest point, which would bias sloped features away from the camera
    by a fraction of a pixel and alias edges. Empty pixels get depth inf and value 0.
    """
    facing = np.sum(normals * (points - cam.origin), axis=-1) < 0
    uvz = project(cam, points[facing])
    ui = np.rint(uvz[:, 0]).astype(np.int64)
    vi = np.rint(uvz[:, 1]).astype(np.int64)
    ok = (ui >= 0) & (ui < cam.size) & (vi >= 0) & (vi < cam.size) & (uvz[:, 2] > 0)
    pix = vi[ok] * cam.size + ui[ok]
    z = uvz[ok, 2].astype(np.float64)
    vals = values[facing][ok]
    n_pix = cam.size * cam.size
    nearest = np.full(n_pix, np.inf)
    np.minimum.at(nearest, pix, z)
    front = z <= nearest[pix] + _SURFACE_MM
    pix, z, vals = pix[front], z[front], vals[front]
    count = np.bincount(pix, minlength=n_pix).astype(np.float64)
    hit = count > 0
    depth = np.full(n_pix, np.inf)
    depth[hit] = np.bincount(pix, weights=z, minlength=n_pix)[hit] / count[hit]
    out = np.zeros((n_pix, vals.shape[1]))
    for ch in range(vals.shape[1]):
        out[hit, ch] = np.bincount(pix, weights=vals[:, ch], minlength=n_pix)[hit] / count[hit]
    return _fill_pinholes(depth.reshape(cam.size, cam.size),
                          out.reshape(cam.size, cam.size, -1))


def _fill_pinholes(depth: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill isolated empty pixels inside the splatted head from their covered neighbours."""
    covered = np.isfinite(depth).astype(np.float32)
    kernel = np.ones((3, 3), np.float32)
    count = cv2.filter2D(covered, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    holes = (covered == 0) & (count >= 5)
    if not holes.any():
        return depth, values
    safe = np.where(covered > 0, depth, 0.0).astype(np.float32)
    mean_z = cv2.filter2D(safe, -1, kernel, borderType=cv2.BORDER_CONSTANT) / np.maximum(count, 1)
    depth = np.where(holes, mean_z, depth)
    for ch in range(values.shape[2]):
        chan = values[..., ch].astype(np.float32)
        mean_v = cv2.filter2D(chan, -1, kernel, borderType=cv2.BORDER_CONSTANT)
        values[..., ch] = np.where(holes, mean_v / np.maximum(count, 1), values[..., ch])
    return depth, values


def render_view(cam: Camera, scene: Scene, ident: Identity, mesh: HeadMesh,
                rng: np.random.Generator, *, noise: float,
                depth_noise: float | None = None, hole_rate: float = 0.0) -> Frame:
    """Render one camera's view: sensor colour, optionally the depth map, and eye centres.

    ``depth_noise`` (mm of noise at 1 m, growing with the square of the distance) switches the
    depth map on; ``hole_rate`` is the fraction of pixels lost in random dropout blobs, on top
    of the holes at depth edges.
    """
    rot = head_to_world(scene)
    points = mesh.points @ rot.T + scene.head_pos
    normals = mesh.normals @ rot.T
    radiance_pts = _shade(mesh.albedo, normals, scene)
    head_z, head_rad = _splat(cam, points, radiance_pts, normals)
    back_z, back_rad = _background(cam, scene, ident)
    near = head_z < back_z
    depth = np.where(near, head_z, back_z)
    radiance = np.where(near[..., None], head_rad, back_rad)
    color = _sensor(cam, radiance, scene.exposure, rng, noise)
    eyes_w = mesh.eyes @ rot.T + scene.head_pos
    uv = project(cam, eyes_w)
    order = np.argsort(uv[:, 0])
    (lx, ly), (rx, ry) = uv[order[0], :2], uv[order[1], :2]
    depth_map = None
    if depth_noise is not None:
        depth_map = _depth_sensor(depth, rng, depth_noise, hole_rate)
    return Frame(color=color, depth=depth_map, eyes=(float(lx), float(ly), float(rx), float(ry)))


def _sensor(cam: Camera, radiance: np.ndarray, exposure: float, rng: np.random.Generator,
            noise: float) -> np.ndarray:
    """Linear radiance -> RGB uint8: blur, exposure, white balance, noise, gamma, clipping."""
    linear = radiance * (exposure * cam.gain * _BASE_GAIN) * cam.wb
    linear = cv2.GaussianBlur(linear.astype(np.float32), (0, 0), cam.blur)
    sigma = noise + 0.015 * np.sqrt(np.clip(linear, 0.0, None))
    linear = linear + sigma * rng.standard_normal(linear.shape).astype(np.float32)
    encoded = np.clip(linear, 0.0, 1.0) ** _GAMMA
    return np.rint(encoded * 255.0).astype(np.uint8)


def _depth_sensor(depth: np.ndarray, rng: np.random.Generator, noise_at_1m: float,
                  hole_rate: float) -> np.ndarray:
    """Camera depth -> uint16 mm with distance-dependent noise, edge holes and dropout blobs."""
    z = depth + noise_at_1m * (depth / 1000.0) ** 2 * rng.standard_normal(depth.shape)
    out = np.clip(np.rint(z), 0, 65535)
    # Structured-light sensors lose pixels at depth discontinuities (shadowed pattern).
    grad = np.maximum(np.abs(np.diff(depth, axis=1, prepend=depth[:, :1])),
                      np.abs(np.diff(depth, axis=0, prepend=depth[:1, :])))
    edge = (grad > 40.0) & (rng.random(depth.shape) < 0.6)
    # Dropout blobs: thresholded smooth noise covering about ``hole_rate`` of the frame.
    size = depth.shape[0]
    coarse = rng.random((max(2, size // 8), max(2, size // 8))).astype(np.float32)
    smooth = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    blobs = smooth > np.quantile(smooth, 1.0 - hole_rate) if hole_rate > 0 else False
    out[edge | blobs] = 0
    return out.astype(np.uint16)


def mesh_spacing(size: int, nearest_mm: float = HEAD_DISTANCE_MM[0]) -> float:
    """Surface sample spacing (mm) fine enough to leave no gaps at the nearest head distance."""
    pixel_mm = nearest_mm / focal_length(size)
    return pixel_mm / 1.8
