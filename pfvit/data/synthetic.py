"""Built-in synthetic faces: the embedded default data set, with a ground-truth poker face for every sample.

A face is three independent parameter sets, each recorded in the sample's ``json`` and enough to re-render it:

* **identity** — face shape and size, skin tone, hair colour and style, eye size, spacing and iris colour, nose,
  mouth width, lip colour, brows, glasses, beard (sampled once per identity id);
* **expression** — one of the 8 canonical classes and an intensity in [0, 1], realised only through
  action-unit-like parts (brow raise / lower / inner raise, eye opening, cheek raise, lip-corner pull up / down,
  lip stretch, lip press, upper-lip raise, jaw drop, nose wrinkle, one-sided corner for contempt). Neutral is
  intensity 0 and all parts 0. Prototypes share parts (fear and surprise both raise brows, open eyes and drop the
  jaw; disgust and anger both lower brows), so low intensities make neighbouring classes genuinely hard;
* **disturbance** — roll, shift and scale, lighting gradient, background colour and texture, noise and an optional
  occluder, independent of the other two.

The **neutral twin** of a sample is the same identity and disturbance rendered with a neutral expression.
Shapes are drawn as polygons in unit coordinates, moved by the disturbance's similarity transform, and rasterised
with PIL at any output size (``supersample=2`` anti-aliases at half the speed).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from ..labels import CANONICAL, NEUTRAL

AU_NAMES = ("brow_raise", "brow_lower", "brow_inner_raise", "eye_open", "cheek_raise", "lip_corner_up",
            "lip_corner_down", "lip_stretch", "lip_press", "upper_lip_raise", "jaw_drop", "nose_wrinkle",
            "asym_corner")

# Action-unit-like parts of each class at intensity 1 (eye_open < 0 means the lids tighten).
PROTOTYPES: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"lip_corner_up": 1.0, "cheek_raise": 0.8, "lip_stretch": 0.3, "jaw_drop": 0.25},
    "sad": {"brow_inner_raise": 1.0, "lip_corner_down": 0.9, "eye_open": -0.3, "brow_lower": 0.15},
    "surprise": {"brow_raise": 1.0, "eye_open": 1.0, "jaw_drop": 1.0},
    "fear": {"brow_raise": 0.7, "brow_inner_raise": 0.6, "brow_lower": 0.3, "eye_open": 0.9, "lip_stretch": 0.9,
             "jaw_drop": 0.45},
    "disgust": {"nose_wrinkle": 1.0, "upper_lip_raise": 0.9, "brow_lower": 0.55, "lip_corner_down": 0.35,
                "eye_open": -0.35},
    "anger": {"brow_lower": 1.0, "eye_open": -0.5, "lip_press": 0.9, "nose_wrinkle": 0.25},
    "contempt": {"asym_corner": 1.0, "lip_press": 0.25},
}
AU_JITTER = 0.05  # per-part noise around the prototype, so two samples of one class and intensity differ
INTENSITY_RANGE = (0.2, 1.0)
HAIR_STYLES = ("short", "bangs", "long", "bald", "spiky")
BACKGROUNDS = ("plain", "stripes", "blobs", "grain")
ZOOM = 1.4  # the unit-coordinate face fills the frame like an aligned FER crop (hair top and neck are cut)

SKIN_TONES = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 130], [198, 134, 86], [161, 102, 64],
                       [120, 74, 44], [88, 56, 36]], dtype=np.float64)
HAIR_COLOURS = np.array([[20, 16, 14], [60, 40, 28], [110, 72, 40], [180, 130, 70], [220, 190, 120],
                         [150, 60, 30], [160, 160, 160], [235, 235, 230]], dtype=np.float64)
IRIS_COLOURS = np.array([[70, 45, 25], [40, 90, 150], [60, 110, 60], [110, 90, 60], [30, 30, 30]],
                        dtype=np.float64)


@dataclass
class Identity:
    face_width: float      # half-width of the face ellipse, unit coordinates
    face_height: float
    jaw: float             # 0 round … 1 square chin
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    hair_style: str
    eye_size: float
    eye_spacing: float     # distance of each eye centre from the midline
    iris: tuple[int, int, int]
    nose_length: float
    nose_width: float
    mouth_width: float     # half-width
    lip: tuple[int, int, int]
    brow_thickness: float
    glasses: bool
    beard: bool


@dataclass
class Expression:
    label: int
    intensity: float
    au: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return CANONICAL[self.label]


@dataclass
class Disturbance:
    roll_deg: float
    shift: tuple[float, float]
    scale: float
    light_angle: float
    light_strength: float
    background: tuple[int, int, int]
    background_kind: str
    noise_sigma: float
    seed: int              # texture and pixel noise; shared by a sample and its neutral twin
    occluder: dict | None = None
    texture: float = 1.0   # amplitude of the background texture (0: plain)


NEUTRAL_EXPRESSION = Expression(NEUTRAL, 0.0, {})


def _colour(rng: np.random.Generator, palette: np.ndarray, jitter: float) -> tuple[int, int, int]:
    base = palette[rng.integers(len(palette))]
    return tuple(int(v) for v in np.clip(base + rng.normal(0, jitter, 3), 0, 255))


def sample_identity(seed: int, identity_id: int) -> Identity:
    """The identity ``identity_id`` of the family ``seed``; independent of expression and disturbance."""
    rng = np.random.default_rng([seed, 1, identity_id])
    skin = _colour(rng, SKIN_TONES, 8)
    return Identity(
        face_width=float(rng.uniform(0.21, 0.27)), face_height=float(rng.uniform(0.28, 0.34)),
        jaw=float(rng.uniform(0, 1)), skin=skin, hair=_colour(rng, HAIR_COLOURS, 10),
        hair_style=HAIR_STYLES[rng.integers(len(HAIR_STYLES))], eye_size=float(rng.uniform(0.038, 0.052)),
        eye_spacing=float(rng.uniform(0.085, 0.11)), iris=_colour(rng, IRIS_COLOURS, 12),
        nose_length=float(rng.uniform(0.08, 0.12)), nose_width=float(rng.uniform(0.025, 0.04)),
        mouth_width=float(rng.uniform(0.06, 0.085)),
        lip=tuple(int(v) for v in np.clip(np.array(skin) * [0.8, 0.55, 0.55] + rng.normal(0, 6, 3), 0, 255)),
        brow_thickness=float(rng.uniform(0.013, 0.022)), glasses=bool(rng.random() < 0.2),
        beard=bool(rng.random() < 0.2),
    )


def sample_expression(rng: np.random.Generator, label: int) -> Expression:
    """Class ``label`` at a random intensity; neutral is intensity 0 with every part 0."""
    if label == NEUTRAL:
        return Expression(NEUTRAL, 0.0, {})
    intensity = float(rng.uniform(*INTENSITY_RANGE))
    proto = PROTOTYPES[CANONICAL[label]]
    au = {}
    for name in AU_NAMES:
        value = proto.get(name, 0.0) * intensity + rng.normal(0, AU_JITTER)
        au[name] = round(float(np.clip(value, -1.0 if name == "eye_open" else 0.0, 1.0)), 4)
    return Expression(label, round(intensity, 4), au)


def sample_disturbance(rng: np.random.Generator, strength: float = 1.0) -> Disturbance:
    """A disturbance at ``strength`` (1: the full ranges; 0: upright, centred, evenly lit, noiseless, on plain
    grey). The same draws are taken at every strength, so a strength changes magnitudes, never which face."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"disturbance strength must be in [0, 1], got {strength}")
    occluder = None
    occluder_draw = rng.random()
    if occluder_draw < 0.12:
        occluder = {"center": [float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.55, 0.95))],
                    "radius": [float(rng.uniform(0.06, 0.12)), float(rng.uniform(0.04, 0.09))],
                    "colour": [int(v) for v in rng.integers(0, 256, 3)]}
    roll, dx, dy = rng.uniform(-8, 8), rng.uniform(-0.04, 0.04), rng.uniform(-0.04, 0.04)
    scale, light_angle, light = rng.uniform(0.92, 1.08), rng.uniform(0, 2 * math.pi), rng.uniform(0.0, 0.35)
    background = 128 + (rng.integers(30, 230, 3) - 128) * strength
    return Disturbance(
        roll_deg=float(roll * strength), shift=(float(dx * strength), float(dy * strength)),
        scale=float(1 + (scale - 1) * strength), light_angle=float(light_angle), light_strength=float(light * strength),
        background=tuple(int(round(v)) for v in background),
        background_kind=BACKGROUNDS[rng.integers(len(BACKGROUNDS))], noise_sigma=float(rng.uniform(0, 6) * strength),
        seed=int(rng.integers(2 ** 31)), occluder=occluder if occluder_draw < 0.12 * strength else None,
        texture=float(strength))


# ---------------------------------------------------------------------------------------------------------------
# Rendering


@functools.lru_cache(maxsize=64)
def _unit_arc(start: float, end: float, n: int) -> np.ndarray:
    t = np.linspace(start, end, n)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _ellipse(cx: float, cy: float, rx: float, ry: float, start: float = 0.0, end: float = 2 * math.pi,
             n: int = 28) -> np.ndarray:
    return _unit_arc(start, end, n) * (rx, ry) + (cx, cy)


@functools.lru_cache(maxsize=8)
def _unit_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1): (y, x), each (size, size) float32."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return yy, xx


class _Canvas:
    """Draws polygons given in unit coordinates after the disturbance's similarity transform."""

    def __init__(self, background: Image.Image, d: Disturbance):
        self.px = background.size[0]
        self.image = background
        self.draw = ImageDraw.Draw(self.image)
        a = math.radians(d.roll_deg)
        self.rot = ZOOM * d.scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        self.offset = np.array([0.5 + d.shift[0], 0.5 + d.shift[1]])
        self.line_scale = ZOOM * d.scale * self.px

    def map(self, pts: np.ndarray) -> np.ndarray:
        return ((np.asarray(pts) - 0.5) @ self.rot.T + self.offset) * self.px

    def poly(self, pts: np.ndarray, fill=None, outline=None, width: float = 0.0) -> None:
        self.draw.polygon(self.map(pts).ravel().tolist(), fill=fill)
        if outline is not None and width > 0:
            self.line(pts, outline, width, closed=True)

    def line(self, pts: np.ndarray, colour, width: float, closed: bool = False) -> None:
        xy = self.map(pts)
        if closed:
            xy = np.concatenate([xy, xy[:1]])
        self.draw.line(xy.ravel().tolist(), fill=colour, width=max(1, int(round(width * self.line_scale))), joint="curve")


def _shade(rgb, factor: float) -> tuple[int, int, int]:
    return tuple(min(255, int(c * factor)) for c in rgb)


def _draw_face(c: _Canvas, idt: Identity, au: dict[str, float]) -> dict[str, np.ndarray]:
    """Draw hair, face, features; return the five landmarks in unit coordinates (before the transform)."""
    g = lambda name: au.get(name, 0.0)  # noqa: E731
    cx, cy = 0.5, 0.53
    fw, fh = idt.face_width, idt.face_height + 0.03 * g("jaw_drop")
    skin, dark_skin = idt.skin, _shade(idt.skin, 0.78)

    if idt.hair_style == "long":
        c.poly(_ellipse(cx, cy + 0.02, fw * 1.28, fh * 1.15), fill=idt.hair)
    c.poly(np.array([[cx - fw * 0.45, cy + fh * 0.8], [cx + fw * 0.45, cy + fh * 0.8], [cx + fw * 0.5, 1.05],
                     [cx - fw * 0.5, 1.05]]), fill=dark_skin)  # neck
    for side in (-1, 1):  # ears
        c.poly(_ellipse(cx + side * fw * 0.98, cy, fw * 0.16, fh * 0.2), fill=dark_skin)
    # Face: an ellipse whose lower half is squared towards a jaw line by `jaw`.
    face = _ellipse(cx, cy, fw, fh, n=40)
    lower = face[:, 1] > cy
    face[lower, 0] = cx + (face[lower, 0] - cx) * (1 + 0.18 * idt.jaw * np.sin(np.pi * (face[lower, 1] - cy) / fh))
    c.poly(face, fill=skin)
    if idt.beard:
        beard = np.concatenate([_ellipse(cx, cy, fw, fh, 0.05 * np.pi, 0.95 * np.pi, 20),
                                _ellipse(cx, cy + fh * 0.42, fw * 0.55, fh * 0.2, np.pi, 2 * np.pi, 12)])
        c.poly(beard, fill=_shade(idt.hair, 1.0))
    # Hair on top.
    if idt.hair_style in ("short", "bangs", "long"):
        cap = _ellipse(cx, cy - fh * 0.05, fw * 1.05, fh * 1.02, np.pi * 1.02, np.pi * 1.98, 24)
        cap = np.concatenate([cap, [[cx + fw * 0.9, cy - fh * 0.45], [cx - fw * 0.9, cy - fh * 0.45]]])
        c.poly(cap, fill=idt.hair)
        if idt.hair_style == "bangs":
            c.poly(np.array([[cx - fw * 0.85, cy - fh * 0.5], [cx + fw * 0.85, cy - fh * 0.5],
                             [cx + fw * 0.6, cy - fh * 0.33], [cx - fw * 0.6, cy - fh * 0.3]]), fill=idt.hair)
    elif idt.hair_style == "spiky":
        xs = np.linspace(cx - fw * 0.95, cx + fw * 0.95, 9)
        top = [[x, cy - fh * (1.12 if i % 2 else 0.88)] for i, x in enumerate(xs)]
        c.poly(np.array(top + [[cx + fw * 0.9, cy - fh * 0.5], [cx - fw * 0.9, cy - fh * 0.5]]), fill=idt.hair)

    # Cheeks (cheek raise reddens and lifts them).
    if g("cheek_raise") > 0.05:
        tint = (min(255, skin[0] + 10), int(skin[1] * 0.85), int(skin[2] * 0.85))
        for side in (-1, 1):
            c.poly(_ellipse(cx + side * fw * 0.55, cy + fh * (0.22 - 0.08 * g("cheek_raise")), fw * 0.2,
                            fh * 0.1 * g("cheek_raise") + 0.01), fill=tint)

    # Eyes: opening grows with eye_open, shrinks as lids tighten and cheeks rise.
    eye_y = cy - fh * 0.12
    openness = float(np.clip(1.0 + 0.8 * g("eye_open") - 0.4 * g("cheek_raise"), 0.12, 2.0))
    marks = {}
    for side in (-1, 1):
        ex = cx + side * idt.eye_spacing
        rx, ry = idt.eye_size, idt.eye_size * 0.55 * openness
        c.poly(_ellipse(ex, eye_y, rx, ry), fill=(250, 250, 248), outline=(40, 30, 30), width=0.006)
        r_iris = min(idt.eye_size * 0.5, ry * 0.95)
        c.poly(_ellipse(ex, eye_y, r_iris, r_iris, n=16), fill=idt.iris)
        c.poly(_ellipse(ex, eye_y, r_iris * 0.45, r_iris * 0.45, n=12), fill=(10, 10, 10))
        marks["eye_left" if side < 0 else "eye_right"] = np.array([ex, eye_y])
        # Brow: inner end at the midline side. raise lifts both ends, lower drops and pulls the inner end in,
        # inner raise lifts the inner end only.
        base = eye_y - idt.eye_size * 1.2 - 0.01
        lift = 0.06 * g("brow_raise") - 0.035 * g("brow_lower")
        inner = np.array([ex - side * idt.eye_size * (1.0 - 0.25 * g("brow_lower")),
                          base - lift - 0.05 * g("brow_inner_raise") + 0.025 * g("brow_lower")])
        outer = np.array([ex + side * idt.eye_size * 1.25, base - lift + 0.01 * g("brow_inner_raise")])
        mid = (inner + outer) / 2 + [0, -0.012]
        c.line(np.array([inner, mid, outer]), _shade(idt.hair, 0.9), idt.brow_thickness)
        if g("brow_lower") > 0.3:  # furrow between the brows
            c.line(np.array([[cx + side * 0.012, base - 0.005], [cx + side * 0.008, base + 0.02]]), dark_skin,
                   0.004 * g("brow_lower"))

    # Nose: bridge, nostrils; wrinkle adds creases and lifts the nostrils.
    tip_y = eye_y + idt.nose_length
    wrinkle = g("nose_wrinkle")
    c.line(np.array([[cx, eye_y + 0.02], [cx + 0.006, tip_y - 0.01], [cx, tip_y]]), dark_skin, 0.006)
    for side in (-1, 1):
        c.poly(_ellipse(cx + side * idt.nose_width * (0.7 + 0.25 * wrinkle), tip_y - 0.004 * wrinkle,
                        idt.nose_width * 0.35, idt.nose_width * 0.22), fill=_shade(skin, 0.55))
    if wrinkle > 0.1:
        for k in range(3):
            y = eye_y + 0.025 + 0.012 * k
            c.line(np.array([[cx - 0.018, y], [cx + 0.018, y - 0.004]]), dark_skin, 0.004 * wrinkle)
    marks["nose"] = np.array([cx, tip_y])

    # Mouth: corners move with smile / frown / stretch / contempt; jaw drop opens it; upper-lip raise shows teeth.
    mouth_y = tip_y + 0.065 * (fh / 0.31)
    half = idt.mouth_width * (1 + 0.28 * g("lip_stretch") + 0.12 * g("lip_corner_up") - 0.15 * g("lip_press"))
    corner_dy = -0.06 * g("lip_corner_up") + 0.055 * g("lip_corner_down") + 0.015 * g("lip_stretch")
    left = np.array([cx - half, mouth_y + corner_dy])
    right = np.array([cx + half * (1 + 0.15 * g("asym_corner")), mouth_y + corner_dy - 0.055 * g("asym_corner")])
    top_y = mouth_y - 0.008 - 0.03 * g("upper_lip_raise") + 0.004 * g("lip_press")
    bottom_y = mouth_y + 0.008 + 0.1 * g("jaw_drop") + 0.01 * g("lip_corner_up") - 0.004 * g("lip_press")
    upper = np.array([left, [cx - half * 0.45, top_y - 0.004], [cx, top_y + 0.002], [cx + half * 0.45, top_y - 0.004],
                      right])
    lower = np.array([right, [cx + half * 0.5, bottom_y], [cx, bottom_y + 0.004], [cx - half * 0.5, bottom_y], left])
    opening = np.concatenate([upper, lower[1:-1]])
    if bottom_y - top_y > 0.02 or g("upper_lip_raise") > 0.2 or g("lip_corner_up") > 0.3:
        c.poly(opening, fill=(70, 20, 25))
        teeth = np.array([upper[1] + [0, 0.002], upper[2] + [0, 0.002], upper[3] + [0, 0.002],
                          [upper[3][0], top_y + 0.012], [upper[1][0], top_y + 0.012]])
        c.poly(teeth, fill=(240, 238, 230))
    lip_w = 0.011 * (1 - 0.6 * g("lip_press"))
    c.line(upper, idt.lip, lip_w)
    c.line(lower, idt.lip, lip_w * 1.2)
    marks["mouth_left"], marks["mouth_right"] = left, right

    if idt.glasses:
        for side in (-1, 1):
            c.poly(_ellipse(cx + side * idt.eye_spacing, eye_y, idt.eye_size * 1.6, idt.eye_size * 1.3), outline=(
                25, 25, 25), width=0.007)
        c.line(np.array([[cx - idt.eye_spacing + idt.eye_size * 1.6, eye_y],
                         [cx + idt.eye_spacing - idt.eye_size * 1.6, eye_y]]), (25, 25, 25), 0.006)
    return marks


BACKGROUND_RES = 64  # backgrounds are low-frequency: computed at this size, then resized


@functools.lru_cache(maxsize=1)
def _noise_table() -> np.ndarray:
    """A fixed table of standard normals; each image reads a window of it at a seeded offset (fast noise)."""
    return np.random.default_rng(12345).standard_normal(1 << 21, dtype=np.float32)


def _pixel_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    table = _noise_table()
    n = int(np.prod(shape))
    if n >= len(table):  # images larger than ~800 px: draw fresh noise
        return rng.standard_normal(shape, dtype=np.float32)
    start = int(rng.integers(len(table) - n))
    return table[start:start + n].reshape(shape)


def _background(size: int, d: Disturbance, rng: np.random.Generator) -> Image.Image:
    res = BACKGROUND_RES
    base = np.array(d.background, dtype=np.float32)
    img = np.broadcast_to(base, (res, res, 3)).copy()
    yy, xx = _unit_grid(res)
    if d.background_kind == "stripes":
        period, angle = rng.uniform(0.08, 0.25), rng.uniform(0, np.pi)
        wave = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
        img += (wave * 25 * d.texture)[..., None]
    elif d.background_kind == "blobs":
        for _ in range(4):
            bx, by, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.3)
            blob = np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * r * r)) * rng.uniform(-50, 50)
            img += (blob * d.texture)[..., None]
    elif d.background_kind == "grain":
        coarse = rng.normal(0, 18, (res // 8, res // 8, 1)).astype(np.float32) * d.texture
        img += np.repeat(np.repeat(coarse, 8, 0), 8, 1)
    small = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    return small.resize((size, size), Image.BILINEAR)


def render(identity: Identity, expression: Expression, disturbance: Disturbance, size: int = 224,
           return_landmarks: bool = False, supersample: int = 1):
    """The RGB face image (``size`` × ``size``); with ``return_landmarks`` also the five landmarks in pixels
    (left eye, right eye, nose tip, left and right mouth corner)."""
    d = disturbance
    rng = np.random.default_rng(d.seed)  # same stream for a sample and its neutral twin
    canvas = _Canvas(_background(size * supersample, d, rng), d)
    marks = _draw_face(canvas, identity, expression.au)
    if d.occluder is not None:
        o = d.occluder
        canvas.poly(_ellipse(o["center"][0], o["center"][1], o["radius"][0], o["radius"][1]),
                    fill=tuple(o["colour"]))
    img = np.asarray(canvas.image.reduce(supersample) if supersample > 1 else canvas.image, dtype=np.float32)
    # Lighting gradient across the image, then sensor noise.
    yy, xx = _unit_grid(size)
    light = 1.0 + d.light_strength * ((xx - 0.5) * math.cos(d.light_angle) + (yy - 0.5) * math.sin(d.light_angle))
    img = img * light[..., None]
    if d.noise_sigma > 0:
        img += _pixel_noise(rng, img.shape) * d.noise_sigma
    image = Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8), "RGB")
    if not return_landmarks:
        return image
    names = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")
    points = canvas.map(np.stack([marks[n] for n in names])) / supersample
    return image, points


# ---------------------------------------------------------------------------------------------------------------
# A data set of samples


@dataclass
class SyntheticSample:
    key: str
    split: str
    identity_id: int
    identity: Identity
    expression: Expression
    disturbance: Disturbance

    @property
    def label(self) -> int:
        return self.expression.label

    def image(self, size: int = 224) -> Image.Image:
        return render(self.identity, self.expression, self.disturbance, size)

    def neutral_twin(self, size: int = 224) -> Image.Image:
        return render(self.identity, NEUTRAL_EXPRESSION, self.disturbance, size)

    def to_json(self) -> dict:
        return {"identity_id": self.identity_id, "identity": dataclasses.asdict(self.identity),
                "expression": dataclasses.asdict(self.expression),
                "disturbance": dataclasses.asdict(self.disturbance)}


def sample_from_json(meta: dict, key: str = "", split: str = "") -> SyntheticSample:
    """Rebuild a sample from the parameters recorded in its ``json``; it renders the same image."""
    idt = dict(meta["identity"])
    for name in ("skin", "hair", "iris", "lip"):
        idt[name] = tuple(idt[name])
    dist = dict(meta["disturbance"])
    dist["shift"], dist["background"] = tuple(dist["shift"]), tuple(dist["background"])
    return SyntheticSample(key, split, meta["identity_id"], Identity(**idt), Expression(**meta["expression"]),
                           Disturbance(**dist))


SPLITS = ("train", "val", "test")


def split_identities(identities: int, fractions=(0.8, 0.1, 0.1)) -> dict[str, range]:
    """Disjoint identity ranges per split (at least one identity each)."""
    if identities < 3:
        raise ValueError(f"need at least 3 identities for disjoint train/val/test, got {identities}")
    n_val = max(1, round(identities * fractions[1]))
    n_test = max(1, round(identities * fractions[2]))
    n_train = identities - n_val - n_test
    return {"train": range(0, n_train), "val": range(n_train, n_train + n_val),
            "test": range(n_train + n_val, identities)}


def synthetic_samples(num: int, identities: int, seed: int = 0, fractions=(0.8, 0.1, 0.1),
                      disturbance: float = 1.0) -> dict[str, list[SyntheticSample]]:
    """``num`` samples split into train / val / test by disjoint identities, classes uniform; ``disturbance``:
    the strength of pose, lighting, background, noise and occluders (see :func:`sample_disturbance`).

    Sample ``i`` depends only on (seed, i), so any subset can be rendered in any order or process.
    """
    ranges = split_identities(identities, fractions)
    counts = [round(num * f) for f in fractions]
    counts[0] = num - counts[1] - counts[2]
    out: dict[str, list[SyntheticSample]] = {}
    index = 0
    for split, count in zip(SPLITS, counts):
        ids = ranges[split]
        samples = []
        for _ in range(count):
            rng = np.random.default_rng([seed, 2, index])
            identity_id = int(ids[rng.integers(len(ids))])
            label = int(rng.integers(len(CANONICAL)))
            samples.append(SyntheticSample(
                key=f"synthetic_{index:07d}", split=split, identity_id=identity_id,
                identity=sample_identity(seed, identity_id), expression=sample_expression(rng, label),
                disturbance=sample_disturbance(rng, disturbance)))
            index += 1
        out[split] = samples
    return out


def contact_sheet(seed: int = 0, size: int = 112, identities: int = 4) -> Image.Image:
    """8 expressions (full intensity) × ``identities`` rows, each cell with its own disturbance, and a last row
    with the neutral twins of the first row's cells."""
    width = len(CANONICAL)
    sheet = Image.new("RGB", (width * size, (identities + 1) * size + 16), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for col, name in enumerate(CANONICAL):
        draw.text((col * size + 3, 2), name, fill=(0, 0, 0))
    first_row = []
    for row in range(identities):
        identity = sample_identity(seed, row)
        for col, name in enumerate(CANONICAL):
            rng = np.random.default_rng([seed, 3, row, col])
            expression = Expression(col, 0.0 if col == NEUTRAL else 1.0, dict(PROTOTYPES[name]))
            disturbance = sample_disturbance(rng)
            sheet.paste(render(identity, expression, disturbance, size, supersample=2), (col * size, 16 + row * size))
            if row == 0:
                first_row.append((identity, disturbance))
    for col, (identity, disturbance) in enumerate(first_row):
        sheet.paste(render(identity, NEUTRAL_EXPRESSION, disturbance, size, supersample=2),
                    (col * size, 16 + identities * size))
    return sheet


def group_photo(seed: int = 0, faces: int = 3, face_size: int = 160, background=(196, 200, 204)) -> Image.Image:
    """A "photo" of several synthetic faces side by side on a plain background, for trying face detection and
    ``predict.py`` without real data (a cartoon face is not always detected: count what the detector finds)."""
    samples = synthetic_samples(faces, faces, seed=seed, fractions=(1.0, 0.0, 0.0))["train"]
    gap = face_size // 4
    canvas = Image.new("RGB", (gap + faces * (face_size + gap), face_size + 2 * gap), background)
    for i, sample in enumerate(samples):
        canvas.paste(sample.image(face_size), (gap + i * (face_size + gap), gap))
    return canvas
