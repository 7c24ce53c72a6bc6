"""Synthetic person-ReID data in the Market-1501 layout, for machines without datasets.

A person is a cheap 2-D figure (colours and shapes carry the identity); cameras change
what real cameras change. Each image has its own random stream seeded by (seed, kind, id,
image index): byte-identical output whatever the number of workers. `sample_identity`,
`sample_camera` / `camera_styles`, `sample_pose` and `render_person` are public (the
multicam scene reuses them). Details: docs/ARCHITECTURE.md, "Module notes: reid_core/data/synth.py".
"""
from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import multiprocessing as mp
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..errors import DataError
from ..synth_options import check_options, train_ids_of

__all__ = [
    "PersonAppearance",
    "CameraStyle",
    "Pose",
    "sample_identity",
    "sample_camera",
    "camera_styles",
    "soften_camera",
    "sample_pose",
    "render_person",
    "render_background",
    "generate",
    "MARKET_SIZED",
]

RGB = tuple[float, float, float]
DIRECTIONS = ("front", "back", "left", "right")

# Arguments of `generate` giving a set the size of Market-1501 (751 + 750 ids, ~32k images).
MARKET_SIZED = {"num_ids": 1501, "images_per_id": 17, "num_cameras": 6, "num_distractors": 2793, "num_junk": 3819}

# Label values of the person map.
_BG, _SKIN, _HAIR, _UPPER, _LOWER, _SHOES, _BAG, _LOGO = range(8)

# Clothing colours with (upper, lower) weights: dark and neutral colours dominate, as in
# real crowds, so that many people share their main colour.
_CLOTHES = [
    ((25, 25, 28), 0.18, 0.25),  # black
    ((70, 70, 75), 0.08, 0.10),  # dark grey
    ((128, 128, 130), 0.07, 0.06),  # grey
    ((230, 230, 226), 0.12, 0.03),  # white
    ((30, 40, 90), 0.07, 0.08),  # navy
    ((50, 90, 170), 0.07, 0.04),  # blue
    ((70, 95, 140), 0.02, 0.20),  # denim
    ((140, 180, 220), 0.05, 0.02),  # light blue
    ((180, 30, 35), 0.07, 0.02),  # red
    ((230, 140, 170), 0.04, 0.01),  # pink
    ((230, 120, 30), 0.03, 0.005),  # orange
    ((230, 200, 50), 0.04, 0.005),  # yellow
    ((40, 120, 60), 0.05, 0.03),  # green
    ((100, 110, 60), 0.02, 0.03),  # olive
    ((190, 170, 130), 0.04, 0.08),  # beige
    ((110, 70, 40), 0.03, 0.05),  # brown
    ((110, 50, 130), 0.03, 0.01),  # purple
]
_CLOTH_RGB = np.array([c[0] for c in _CLOTHES], dtype=np.float64)
_UPPER_W = np.array([c[1] for c in _CLOTHES]) / sum(c[1] for c in _CLOTHES)
_LOWER_W = np.array([c[2] for c in _CLOTHES]) / sum(c[2] for c in _CLOTHES)
_SKIN_TONES = np.array([(240, 205, 180), (205, 155, 115), (150, 100, 70), (85, 58, 42)], dtype=np.float64)
_HAIR_COLOURS = [((20, 18, 16), 0.40), ((60, 40, 25), 0.25), ((110, 75, 45), 0.12), ((200, 170, 110), 0.10),
         ((155, 155, 155), 0.08), ((140, 60, 30), 0.05)]
_SCENE = np.array([(150, 150, 145), (120, 110, 100), (170, 160, 140), (90, 95, 100), (130, 140, 120),
                   (180, 180, 185), (100, 80, 70), (60, 65, 70), (140, 120, 110), (110, 125, 140)], dtype=np.float64)


def _rgb(c: np.ndarray) -> RGB:
    return tuple(float(v) for v in np.clip(c, 0, 255))  # type: ignore[return-value]


def _jitter(rng: np.random.Generator, c: np.ndarray, rel: float = 0.12, absolute: float = 8.0) -> RGB:
    return _rgb(c * rng.uniform(1 - rel, 1 + rel, 3) + rng.normal(0, absolute, 3))


def _pick(rng: np.random.Generator, options: list, weights: list[float]) -> object:
    return options[int(rng.choice(len(options), p=np.asarray(weights) / sum(weights)))]


# ---------------------------------------------------------------------------------
# Appearance, camera, pose


@dataclass(frozen=True)
class PersonAppearance:
    """What identifies a person across cameras."""

    skin: RGB
    hair: RGB
    hair_long: bool
    upper: RGB
    upper2: RGB  # colour of the stripes / checks / logo
    upper_pattern: str  # solid | stripes | checks | logo
    pattern_scale: float  # stripe / check size, fraction of the body height
    long_sleeves: bool
    lower: RGB
    lower_kind: str  # trousers | shorts | skirt
    shoes: RGB
    bag: str  # none | backpack | shoulder | handbag
    bag_colour: RGB
    height: float  # relative body height (0.86-1.0)
    width: float  # shoulder width / body height
    leg_ratio: float  # leg length / body height
    head: float  # head radius / body height


def sample_identity(rng: np.random.Generator) -> PersonAppearance:
    """A random person; colour and shape distributions loosely follow street crowds."""
    ui = int(rng.choice(len(_CLOTHES), p=_UPPER_W))
    li = int(rng.choice(len(_CLOTHES), p=_LOWER_W))
    u2 = int(rng.choice(len(_CLOTHES), p=_UPPER_W))
    if u2 == ui:  # a pattern must be visible
        u2 = (ui + 1 + int(rng.integers(len(_CLOTHES) - 1))) % len(_CLOTHES)
    t = rng.uniform(0, len(_SKIN_TONES) - 1)
    i0 = min(int(t), len(_SKIN_TONES) - 2)
    skin = _SKIN_TONES[i0] * (1 - (t - i0)) + _SKIN_TONES[i0 + 1] * (t - i0)
    hair = np.array(_pick(rng, [h[0] for h in _HAIR_COLOURS], [h[1] for h in _HAIR_COLOURS]), dtype=np.float64)
    pattern = str(_pick(rng, ["solid", "stripes", "checks", "logo"], [0.5, 0.2, 0.12, 0.18]))
    shoes_choice = str(_pick(rng, ["black", "white", "brown", "colour"], [0.4, 0.3, 0.15, 0.15]))
    shoes = {"black": np.array([30.0, 30, 30]), "white": np.array([225.0, 225, 220]),
             "brown": np.array([90.0, 60, 35])}.get(shoes_choice, _CLOTH_RGB[int(rng.integers(len(_CLOTHES)))])
    bag = str(_pick(rng, ["none", "backpack", "shoulder", "handbag"], [0.45, 0.25, 0.2, 0.1]))
    bag_c = _CLOTH_RGB[int(rng.choice(len(_CLOTHES), p=_LOWER_W))]
    return PersonAppearance(
        skin=_jitter(rng, skin, 0.05, 5),
        hair=_jitter(rng, hair, 0.1, 6),
        hair_long=bool(rng.random() < 0.35),
        upper=_jitter(rng, _CLOTH_RGB[ui]),
        upper2=_jitter(rng, _CLOTH_RGB[u2]),
        upper_pattern=pattern,
        pattern_scale=float(rng.uniform(0.025, 0.05) if pattern == "stripes" else rng.uniform(0.04, 0.07)),
        long_sleeves=bool(rng.random() < 0.55),
        lower=_jitter(rng, _CLOTH_RGB[li]),
        lower_kind=str(_pick(rng, ["trousers", "shorts", "skirt"], [0.75, 0.15, 0.10])),
        shoes=_jitter(rng, shoes, 0.08, 5),
        bag=bag,
        bag_colour=_jitter(rng, bag_c),
        height=float(rng.uniform(0.86, 1.0)),
        width=float(rng.uniform(0.2, 0.3)),
        leg_ratio=float(rng.uniform(0.43, 0.52)),
        head=float(rng.uniform(0.06, 0.075)),
    )


@dataclass(frozen=True)
class CameraStyle:
    """How one camera changes the picture (hashable: the background is cached on it)."""

    index: int
    white_balance: RGB  # per-channel gain (colour cast)
    brightness: float
    saturation: float
    contrast: float
    gamma: float
    gradient: tuple[float, float]  # lighting slope (vertical, horizontal)
    noise: float  # sensor noise, grey levels
    blur: float  # Gaussian blur radius at 128x64
    jpeg_quality: int
    resolution: float  # rendered at this fraction of the output size, then upscaled
    scale: float  # mean person height / box height
    view_probs: tuple[float, float, float, float]  # front, back, left, right
    occlusion_p: float
    pole_x: float
    pole_colour: RGB
    box_colour: RGB
    wall: RGB
    floor: RGB
    horizon: float
    texture_seed: int


def sample_camera(rng: np.random.Generator, index: int = 0) -> CameraStyle:
    """A random camera. Nuisances are strong on purpose: raw pixels match poorly."""
    views = rng.dirichlet(np.full(4, 0.7)) * 0.85 + 0.0375
    wall, floor = _SCENE[rng.choice(len(_SCENE), 2, replace=False)]
    return CameraStyle(
        index=int(index),
        white_balance=tuple(float(v) for v in np.exp(rng.normal(0, 0.1, 3))),  # type: ignore[arg-type]
        brightness=float(np.exp(rng.normal(0, 0.18))),
        saturation=float(rng.uniform(0.65, 1.15)),
        contrast=float(rng.uniform(0.7, 1.1)),
        gamma=float(rng.uniform(0.8, 1.25)),
        gradient=(float(rng.uniform(-0.35, 0.35)), float(rng.uniform(-0.25, 0.25))),
        noise=float(rng.uniform(2, 9)),
        blur=float(rng.uniform(0.0, 1.0)),
        jpeg_quality=int(rng.integers(35, 91)),
        resolution=float(rng.uniform(0.6, 1.0)),
        scale=float(rng.uniform(0.78, 0.93)),
        view_probs=tuple(float(v) for v in views / views.sum()),  # type: ignore[arg-type]
        occlusion_p=float(rng.uniform(0.05, 0.3)),
        pole_x=float(rng.uniform(0.1, 0.9)),
        pole_colour=_jitter(rng, _SCENE[int(rng.integers(len(_SCENE)))], 0.3, 20),
        box_colour=_jitter(rng, _CLOTH_RGB[int(rng.integers(len(_CLOTHES)))], 0.2, 10),
        wall=_jitter(rng, wall, 0.15, 10),
        floor=_jitter(rng, floor, 0.15, 10),
        horizon=float(rng.uniform(0.35, 0.7)),
        texture_seed=int(rng.integers(2**31)),
    )


def soften_camera(camera: CameraStyle, variation: float) -> CameraStyle:
    """Move a camera's nuisances toward a neutral camera: 1 = unchanged, 0 = neutral.

    Colour cast, exposure, saturation, contrast, gamma, lighting slope, noise, blur, JPEG
    loss, resolution loss and occlusions shrink by `variation`; scene colours are
    desaturated by it. Walking directions, framing and the scene's layout are kept.
    """
    if not 0.0 <= variation <= 1.0:
        raise DataError(f"synthetic dataset: camera_variation must be in [0, 1], got {variation}")
    if variation == 1.0:
        return camera
    v = variation

    def toward(value: float, neutral: float) -> float:
        return float(neutral + (value - neutral) * v)

    def desaturate(c: RGB) -> RGB:
        grey = sum(c) / 3.0
        return tuple(grey + (x - grey) * v for x in c)  # type: ignore[return-value]

    return dataclasses.replace(
        camera,
        white_balance=tuple(toward(g, 1.0) for g in camera.white_balance),  # type: ignore[arg-type]
        brightness=toward(camera.brightness, 1.0), saturation=toward(camera.saturation, 1.0),
        contrast=toward(camera.contrast, 1.0), gamma=toward(camera.gamma, 1.0),
        gradient=(camera.gradient[0] * v, camera.gradient[1] * v), noise=camera.noise * v, blur=camera.blur * v,
        jpeg_quality=round(toward(camera.jpeg_quality, 95)), resolution=toward(camera.resolution, 1.0),
        occlusion_p=camera.occlusion_p * v, wall=desaturate(camera.wall), floor=desaturate(camera.floor),
    )


def camera_styles(seed: int, num_cameras: int, variation: float = 1.0) -> list[CameraStyle]:
    """The cameras of dataset `seed` (camera i depends on (seed, i) only), softened by `variation`."""
    return [soften_camera(sample_camera(np.random.default_rng([seed, 1, i]), i), variation) for i in range(num_cameras)]


@dataclass(frozen=True)
class Pose:
    direction: str  # front | back | left | right (walking direction as the camera sees it)
    phase: float  # walking cycle in [-1, 1]: leg and arm swing
    scale: float  # person height / box height
    dx: float  # horizontal offset, fraction of the box width
    dy: float  # vertical offset, fraction of the box height


def sample_pose(rng: np.random.Generator, camera: CameraStyle, direction: str | None = None) -> Pose:
    if direction is None:
        direction = DIRECTIONS[int(rng.choice(4, p=camera.view_probs))]
    return Pose(direction=direction, phase=float(rng.uniform(-1, 1)),
                scale=float(camera.scale * np.exp(rng.normal(0, 0.05))),
                dx=float(rng.normal(0, 0.05)), dy=float(rng.normal(0, 0.03)))


# ---------------------------------------------------------------------------------
# Rendering


_TEX_H, _TEX_W = 256, 128


@functools.lru_cache(maxsize=64)
def _camera_texture(camera: CameraStyle) -> np.ndarray:
    """The camera's scene (wall, floor, structures, fixed clutter) as float32 HxWx3."""
    rng = np.random.default_rng(camera.texture_seed)
    h, w = _TEX_H, _TEX_W
    hz = int(camera.horizon * h)
    img = Image.new("RGB", (w, h), tuple(int(v) for v in camera.wall))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, hz, w, h), fill=tuple(int(v) for v in camera.floor))
    wall, floor = np.array(camera.wall), np.array(camera.floor)
    for _ in range(int(rng.integers(3, 8))):  # doors, pillars, shop fronts
        x0 = rng.uniform(-10, w)
        bw = rng.uniform(8, 45)
        y0 = rng.uniform(0, hz * 0.7)
        c = wall * rng.uniform(0.5, 1.4, 3) if rng.random() < 0.6 else _SCENE[int(rng.integers(len(_SCENE)))]
        draw.rectangle((x0, y0, x0 + bw, hz), fill=tuple(int(v) for v in np.clip(c, 0, 255)))
        if rng.random() < 0.5:  # windows
            cw = max(3, bw / 4)
            for yy in np.arange(y0 + 3, hz - cw, cw * 2):
                for xx in np.arange(x0 + 2, x0 + bw - cw, cw * 1.8):
                    draw.rectangle((xx, yy, xx + cw, yy + cw), fill=(40, 45, 55))
    step = rng.uniform(8, 20)
    dark = tuple(int(v) for v in np.clip(floor * 0.7, 0, 255))
    for yy in np.arange(hz + step / 2, h, step):  # floor tiles
        draw.line((0, yy, w, yy), fill=dark, width=1)
    for _ in range(int(rng.integers(1, 5))):  # bins, plants, bikes at the foot of the wall
        x0 = rng.uniform(0, w)
        bh = rng.uniform(10, 40)
        c = _SCENE[int(rng.integers(len(_SCENE)))] * rng.uniform(0.4, 1.2, 3)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, hz - bh * 0.6, x0 + rng.uniform(6, 25), hz + bh * 0.4), fill=tuple(int(v) for v in np.clip(c, 0, 255)))
    arr = np.asarray(img, dtype=np.float32)
    # Low-frequency lighting blotches: mostly luminance, a little chroma.
    blotch = rng.normal(0, 40, (6, 4, 1)) + rng.normal(0, 8, (6, 4, 3))
    low = np.asarray(Image.fromarray((128 + blotch).clip(0, 255).astype(np.uint8)).resize((w, h), Image.BILINEAR),
                     dtype=np.float32)
    arr = arr + (low - 128) * 0.45 + rng.normal(0, 5, arr.shape).astype(np.float32)
    return np.clip(arr, 0, 255)


def _background(camera: CameraStyle, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random window of the camera's scene, resampled to h x w, with passing clutter."""
    tex = _camera_texture(camera)
    u = rng.uniform(0.45, 0.65)
    ch, cw = _TEX_H * u, _TEX_W * u
    y0 = rng.uniform(0, _TEX_H - ch)
    x0 = rng.uniform(0, _TEX_W - cw)
    ys = (y0 + np.arange(h) * (ch / h)).astype(np.int64)
    xs = (x0 + np.arange(w) * (cw / w)).astype(np.int64)
    bg = tex[ys[:, None], xs[None, :]]
    for _ in range(int(rng.integers(0, 3))):
        bh, bw = int(rng.uniform(0.1, 0.5) * h), int(rng.uniform(0.1, 0.4) * w)
        yy, xx = int(rng.integers(0, h)), int(rng.integers(-bw // 2, w))
        c = 0.5 * _CLOTH_RGB[int(rng.integers(len(_CLOTHES)))] + 0.5 * np.asarray(camera.wall)  # muted, far away
        bg[yy : yy + bh, max(0, xx) : xx + bw] = c * rng.uniform(0.6, 1.0)
    return bg


def _limb(x: float, y: float, length: float, width: float, angle: float) -> list[tuple[float, float]]:
    """Quad of a limb hanging from (x, y), rotated by `angle` (radians, + = towards +x)."""
    dx, dy = math.sin(angle), math.cos(angle)
    px, py = dy * width / 2, -dx * width / 2
    ex, ey = x + dx * length, y + dy * length
    return [(x - px, y - py), (x + px, y + py), (ex + px, ey + py), (ex - px, ey - py)]


def _draw_labels(app: PersonAppearance, pose: Pose, h: int, w: int) -> tuple[np.ndarray, dict[str, float]]:
    """Label map of the person facing the camera (front/back) or facing +x (side)."""
    lab = Image.new("L", (w, h), _BG)
    d = ImageDraw.Draw(lab)
    ph = h * pose.scale * app.height
    top = (h - ph) * 0.5 + pose.dy * h
    side = pose.direction in ("left", "right")
    cx = w * 0.5 + (-pose.dx if pose.direction == "left" else pose.dx) * w
    hr = ph * app.head
    head_cy = top + hr
    sh_y = top + 2.1 * hr
    hip_y = top + ph * (1 - app.leg_ratio)
    foot_y = top + ph
    sw = ph * app.width * (0.6 if side else 1.0)
    hipw = sw * (0.9 if side else 0.8)
    leg_len = foot_y - hip_y
    legw = (ph * app.width * 0.8) * (0.42 if side else 0.45)
    armw = ph * app.width * 0.19
    arm_len = (hip_y - sh_y) * 1.15
    swing = pose.phase * (0.45 if side else 0.06)

    def leg(x: float, angle: float) -> None:
        quad = _limb(x, hip_y, leg_len, legw, angle)
        if app.lower_kind == "trousers":
            d.polygon(quad, fill=_LOWER)
        else:
            d.polygon(quad, fill=_SKIN)
            if app.lower_kind == "shorts":
                d.polygon(_limb(x, hip_y, leg_len * 0.45, legw * 1.1, angle), fill=_LOWER)
        fx, fy = x + math.sin(angle) * leg_len, hip_y + math.cos(angle) * leg_len
        fwd = legw * 0.5 if side else 0.0
        d.ellipse((fx - legw * 0.6, fy - legw * 0.35, fx + legw * 0.6 + fwd, fy + legw * 0.25), fill=_SHOES)

    def arm(x: float, angle: float) -> None:
        quad = _limb(x, sh_y + armw * 0.3, arm_len, armw, angle)
        if app.long_sleeves:
            d.polygon(quad, fill=_UPPER)
        else:
            d.polygon(quad, fill=_SKIN)
            d.polygon(_limb(x, sh_y + armw * 0.3, arm_len * 0.4, armw * 1.05, angle), fill=_UPPER)
        hx, hy = x + math.sin(angle) * arm_len, sh_y + armw * 0.3 + math.cos(angle) * arm_len
        d.ellipse((hx - armw * 0.55, hy - armw * 0.5, hx + armw * 0.55, hy + armw * 0.6), fill=_SKIN)
        if app.bag == "handbag" and angle * (1 if side else x - cx) >= 0:
            d.rectangle((hx - armw, hy, hx + armw * 1.2, hy + armw * 2.2), fill=_BAG)

    torso = [(cx - sw / 2, sh_y), (cx + sw / 2, sh_y), (cx + hipw / 2, hip_y + 0.02 * ph), (cx - hipw / 2, hip_y + 0.02 * ph)]
    head_box = (cx - hr * 0.9, head_cy - hr, cx + hr * 0.9, head_cy + hr)

    if side:
        if app.hair_long:
            d.rectangle((cx - hr * 1.0, head_cy, cx + hr * 0.1, sh_y + 0.12 * ph), fill=_HAIR)
        if app.bag == "backpack":
            d.rectangle((cx - sw / 2 - 0.3 * sw, sh_y + 0.03 * ph, cx - sw / 2 + 0.1 * sw, hip_y - 0.03 * ph), fill=_BAG)
        leg(cx, -swing)  # far leg and arm first
        arm(cx, swing)
        if app.lower_kind == "skirt":
            d.polygon([(cx - hipw / 2, hip_y), (cx + hipw / 2, hip_y), (cx + hipw * 0.8, hip_y + leg_len * 0.45),
                       (cx - hipw * 0.8, hip_y + leg_len * 0.45)], fill=_LOWER)
        d.polygon(torso, fill=_UPPER)
        leg(cx, swing)
        if app.lower_kind == "skirt":
            d.polygon([(cx - hipw / 2, hip_y), (cx + hipw / 2, hip_y), (cx + hipw * 0.8, hip_y + leg_len * 0.45),
                       (cx - hipw * 0.8, hip_y + leg_len * 0.45)], fill=_LOWER)
        if app.bag == "shoulder":
            d.line((cx - sw * 0.3, sh_y, cx + sw * 0.2, hip_y - 0.05 * ph), fill=_BAG, width=max(1, int(sw * 0.12)))
            d.rectangle((cx - sw * 0.35, hip_y - 0.08 * ph, cx + sw * 0.35, hip_y + 0.05 * ph), fill=_BAG)
        arm(cx, -swing)
        d.rectangle((cx - hr * 0.35, sh_y - hr * 0.5, cx + hr * 0.35, sh_y + 1), fill=_SKIN)
        d.ellipse(head_box, fill=_HAIR)
        d.ellipse((cx - hr * 0.2, head_cy - hr * 0.45, cx + hr * 0.95, head_cy + hr), fill=_SKIN)
    else:
        back = pose.direction == "back"
        if app.hair_long and not back:
            d.rectangle((cx - hr * 1.05, head_cy, cx + hr * 1.05, sh_y + 0.1 * ph), fill=_HAIR)
        offset = (hipw / 2 - legw / 2) * 0.95
        leg(cx - offset, -abs(swing))
        leg(cx + offset, abs(swing))
        if app.lower_kind == "skirt":
            d.polygon([(cx - hipw / 2, hip_y), (cx + hipw / 2, hip_y), (cx + hipw * 0.75, hip_y + leg_len * 0.45),
                       (cx - hipw * 0.75, hip_y + leg_len * 0.45)], fill=_LOWER)
        arm(cx - sw / 2 + armw * 0.35, -0.08 - swing)
        arm(cx + sw / 2 - armw * 0.35, 0.08 + swing)
        d.polygon(torso, fill=_UPPER)
        d.rectangle((cx - hr * 0.35, sh_y - hr * 0.5, cx + hr * 0.35, sh_y + 1), fill=_SKIN)
        if app.upper_pattern == "logo" and not back:
            lw, lh = sw * 0.32, ph * 0.07
            ly = sh_y + 0.06 * ph
            d.rectangle((cx - lw / 2, ly, cx + lw / 2, ly + lh), fill=_LOGO)
        s = -1.0 if back else 1.0  # bags hang on the person's left: mirrored from the back
        if app.bag == "backpack":
            if back:
                d.rectangle((cx - sw * 0.38, sh_y + 0.03 * ph, cx + sw * 0.38, hip_y - 0.02 * ph), fill=_BAG)
            else:
                sw_w = max(1, int(sw * 0.09))
                d.line((cx - sw * 0.3, sh_y, cx - sw * 0.3, sh_y + 0.18 * ph), fill=_BAG, width=sw_w)
                d.line((cx + sw * 0.3, sh_y, cx + sw * 0.3, sh_y + 0.18 * ph), fill=_BAG, width=sw_w)
        elif app.bag == "shoulder":
            d.line((cx - s * sw * 0.4, sh_y, cx + s * hipw / 2, hip_y - 0.06 * ph), fill=_BAG, width=max(1, int(sw * 0.08)))
            bx = cx + s * (hipw / 2 + 0.1 * sw)
            d.rectangle((min(bx, bx + s * 0.3 * sw), hip_y - 0.08 * ph, max(bx, bx + s * 0.3 * sw), hip_y + 0.06 * ph), fill=_BAG)
        d.ellipse(head_box, fill=_HAIR if back else _SKIN)
        if back:
            if app.hair_long:
                d.rectangle((cx - hr * 0.95, head_cy, cx + hr * 0.95, sh_y + 0.12 * ph), fill=_HAIR)
        else:
            d.chord(head_box, 180, 360, fill=_HAIR)
    labels = np.asarray(lab)
    geo = {"cx": cx, "top": top, "ph": ph, "sh_y": sh_y, "sw": sw}
    return labels, geo


def _colourise(app: PersonAppearance, labels: np.ndarray, geo: dict[str, float]) -> np.ndarray:
    """Person colours (HxWx3 float32) with clothing pattern and cylindrical shading."""
    h, w = labels.shape
    lut = np.zeros((8, 3), dtype=np.float32)
    for lab, c in ((_SKIN, app.skin), (_HAIR, app.hair), (_UPPER, app.upper), (_LOWER, app.lower),
                   (_SHOES, app.shoes), (_BAG, app.bag_colour), (_LOGO, app.upper2)):
        lut[lab] = c
    img = lut[labels]
    if app.upper_pattern in ("stripes", "checks"):
        size = max(1.0, app.pattern_scale * geo["ph"])
        rows = np.floor((np.arange(h) - geo["sh_y"]) / size).astype(np.int64)
        if app.upper_pattern == "stripes":
            pat = np.broadcast_to((rows & 1).astype(bool)[:, None], (h, w))
        else:
            cols = np.floor((np.arange(w) - geo["cx"]) / size).astype(np.int64)
            pat = ((rows[:, None] + cols[None, :]) & 1).astype(bool)
        img[(labels == _UPPER) & pat] = app.upper2
    x = (np.arange(w, dtype=np.float32) - geo["cx"]) / max(1.0, 0.65 * geo["sw"])
    col = 1.0 - 0.3 * np.minimum(x * x, 1.0)
    row = 1.0 - 0.15 * np.clip((np.arange(h, dtype=np.float32) - geo["top"]) / max(1.0, geo["ph"]), 0, 1)
    return img * (row[:, None] * col[None, :])[:, :, None]


def _occlude(img: np.ndarray, camera: CameraStyle, rng: np.random.Generator) -> None:
    h, w, _ = img.shape
    kind = int(rng.choice(3, p=[0.4, 0.35, 0.25]))
    shade = rng.uniform(0.8, 1.2)
    if kind == 0:  # a pole at the camera's usual place
        pw = max(1, int(rng.uniform(0.05, 0.13) * w))
        px = int((camera.pole_x + rng.normal(0, 0.15)) * w)
        img[:, max(0, px) : max(0, px + pw)] = np.array(camera.pole_colour) * shade
    elif kind == 1:  # a box, bench or car hiding the legs
        bh = int(rng.uniform(0.12, 0.35) * h)
        x0 = int(rng.uniform(-0.5, 0.4) * w)
        img[h - bh :, max(0, x0) : x0 + int(rng.uniform(0.6, 1.5) * w)] = np.array(camera.box_colour) * shade
    else:  # a passer-by at one edge
        pw = int(rng.uniform(0.18, 0.35) * w)
        y0 = int(rng.uniform(0.05, 0.3) * h)
        c = _CLOTH_RGB[int(rng.integers(len(_CLOTHES)))] * rng.uniform(0.6, 1.1)
        if rng.random() < 0.5:
            img[y0:, :pw] = c
        else:
            img[y0:, w - pw :] = c


def _camera_effects(img: np.ndarray, camera: CameraStyle, rng: np.random.Generator) -> np.ndarray:
    h, w, _ = img.shape
    grey = img.mean(axis=2, keepdims=True)
    img = grey + camera.saturation * (img - grey)
    gain = np.asarray(camera.white_balance, dtype=np.float32) * np.float32(camera.brightness * np.exp(rng.normal(0, 0.08)))
    gy = camera.gradient[0] + rng.normal(0, 0.05)
    gx = camera.gradient[1] + rng.normal(0, 0.05)
    light = (1.0 + gy * (np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None])
             + gx * (np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]))
    img = img * gain * light[:, :, None]
    img = (img - 128.0) * camera.contrast + 128.0
    img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** camera.gamma
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(camera.noise)
    return np.clip(img, 0, 255).astype(np.uint8)


def _finish(arr: np.ndarray, camera: CameraStyle, rng: np.random.Generator, size: tuple[int, int], jpeg: bool) -> Image.Image:
    out_h, out_w = size
    im = Image.fromarray(arr)
    if im.size != (out_w, out_h):
        im = im.resize((out_w, out_h), Image.BILINEAR)
    radius = camera.blur + rng.uniform(0, 0.4)
    if radius > 0.3:
        im = im.filter(ImageFilter.GaussianBlur(radius * out_h / 128))
    if jpeg:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=camera.jpeg_quality)
        buf.seek(0)
        im = Image.open(buf).convert("RGB")
    return im


def _render_size(camera: CameraStyle, rng: np.random.Generator, size: tuple[int, int]) -> tuple[int, int]:
    res = float(np.clip(camera.resolution * rng.uniform(0.9, 1.1), 0.35, 1.0))
    return max(24, round(size[0] * res)), max(12, round(size[1] * res))


def render_person(
    appearance: PersonAppearance,
    camera: CameraStyle,
    rng: np.random.Generator,
    size: tuple[int, int] = (128, 64),
    pose: Pose | None = None,
    jpeg: bool = False,
) -> Image.Image:
    """One RGB crop (height, width = `size`) of the person seen by `camera`.

    `pose` defaults to a random one from the camera's usual walking directions. With
    `jpeg`, the image goes through the camera's JPEG quality (generate() instead applies
    it when saving).
    """
    if pose is None:
        pose = sample_pose(rng, camera)
    h, w = _render_size(camera, rng, size)
    bg = _background(camera, rng, h, w)
    labels, geo = _draw_labels(appearance, pose, h, w)
    person = _colourise(appearance, labels, geo)
    mask = labels > 0
    if pose.direction == "left":  # drawn facing right
        person, mask = person[:, ::-1], mask[:, ::-1]
    img = np.where(mask[:, :, None], person, bg)
    if rng.random() < camera.occlusion_p:
        _occlude(img, camera, rng)
    return _finish(_camera_effects(img, camera, rng), camera, rng, size, jpeg)


def render_background(camera: CameraStyle, rng: np.random.Generator, size: tuple[int, int] = (128, 64),
                      jpeg: bool = False) -> Image.Image:
    """A crop of the camera's scene with no person (a false detection: 'junk')."""
    h, w = _render_size(camera, rng, size)
    img = _background(camera, rng, h, w)
    if rng.random() < 0.5:
        _occlude(img, camera, rng)
    return _finish(_camera_effects(img, camera, rng), camera, rng, size, jpeg)


# ---------------------------------------------------------------------------------
# Dataset generation

# Stream ids of np.random.default_rng([seed, STREAM, ...]).
_S_ID, _S_CAM, _S_SPLIT, _S_TRACK, _S_IMG, _S_DISTRACTOR, _S_JUNK, _S_NAME = range(8)


@dataclass(frozen=True)
class _Task:
    subset: str  # bounding_box_train | query | bounding_box_test
    kind: str  # id | distractor | junk
    number: int  # pid (id) or running index (distractor, junk)
    image: int  # image index within the identity
    cam: int  # 0-based


_CTX: dict = {}


def _init_worker(seed: int, num_cameras: int, size: tuple[int, int], out: str, variation: float = 1.0) -> None:
    _CTX.update(seed=seed, cams=camera_styles(seed, num_cameras, variation), size=size, out=out)
    _identity.cache_clear()


@functools.lru_cache(maxsize=4096)
def _identity(seed: int, pid: int) -> PersonAppearance:
    return sample_identity(np.random.default_rng([seed, _S_ID, pid]))


def _track_pose(seed: int, pid: int, cam: CameraStyle, rng: np.random.Generator) -> Pose:
    """A person walks one way through a camera's view: images of one (id, camera) share
    direction and framing, with per-image jitter and an occasional turn."""
    tr = np.random.default_rng([seed, _S_TRACK, pid, cam.index])
    base = sample_pose(tr, cam)
    direction = base.direction if rng.random() > 0.25 else DIRECTIONS[int(rng.choice(4, p=cam.view_probs))]
    return Pose(direction=direction, phase=float(rng.uniform(-1, 1)),
                scale=float(base.scale * np.exp(rng.normal(0, 0.02))),
                dx=float(base.dx + rng.normal(0, 0.02)), dy=float(base.dy + rng.normal(0, 0.015)))


def _file_name(seed: int, task: _Task) -> str:
    rng = np.random.default_rng([seed, _S_NAME, {"id": 0, "distractor": 1, "junk": 2}[task.kind], task.number, task.image])
    pid = {"id": task.number, "distractor": 0, "junk": -1}[task.kind]
    slot = task.image if task.kind == "id" else task.number
    frame = 40 * slot + int(rng.integers(40))  # unique per (pid, file): the slot is in it
    pid_s = "-1" if pid < 0 else f"{pid:04d}"  # Market writes junk as -1_c...
    return f"{pid_s}_c{task.cam + 1}s{int(rng.integers(1, 7))}_{frame:06d}_{int(rng.integers(0, 4)):02d}.jpg"


def _render_task(task: _Task) -> str:
    seed, size = _CTX["seed"], _CTX["size"]
    cam: CameraStyle = _CTX["cams"][task.cam]
    if task.kind == "id":
        rng = np.random.default_rng([seed, _S_IMG, task.number, task.image])
        img = render_person(_identity(seed, task.number), cam, rng, size, pose=_track_pose(seed, task.number, cam, rng))
    elif task.kind == "distractor":  # a one-off person, often a bad (partial) detection
        rng = np.random.default_rng([seed, _S_DISTRACTOR, task.number])
        pose = sample_pose(rng, cam)
        if rng.random() < 0.5:
            pose = Pose(pose.direction, pose.phase, pose.scale * rng.uniform(1.2, 1.8), pose.dx * 2, rng.uniform(-0.35, 0.35))
        img = render_person(sample_identity(rng), cam, rng, size, pose=pose)
    else:  # junk: background, or a fragment of a body
        rng = np.random.default_rng([seed, _S_JUNK, task.number])
        if rng.random() < 0.6:
            img = render_background(cam, rng, size)
        else:
            pose = sample_pose(rng, cam)
            pose = Pose(pose.direction, pose.phase, pose.scale * rng.uniform(2.0, 3.0), rng.uniform(-0.5, 0.5), rng.uniform(-0.6, 0.6))
            img = render_person(sample_identity(rng), cam, rng, size, pose=pose)
    name = _file_name(seed, task)
    quality = int(np.clip(cam.jpeg_quality + rng.integers(-5, 6), 20, 95))
    img.save(Path(_CTX["out"]) / task.subset / name, format="JPEG", quality=quality)
    return task.subset


def _plan(seed: int, num_ids: int, num_train: int, num_cameras: int, images_per_id: int,
          num_distractors: int, num_junk: int) -> tuple[list[_Task], list[int], list[int]]:
    rng = np.random.default_rng([seed, _S_SPLIT])
    pids = rng.permutation(np.arange(1, num_ids + 1))
    train_ids = sorted(int(p) for p in pids[:num_train])
    test_ids = sorted(int(p) for p in pids[num_train:])
    tasks: list[_Task] = []
    test_set = set(test_ids)
    for pid in train_ids + test_ids:
        r = np.random.default_rng([seed, _S_SPLIT, pid])
        is_test = pid in test_set
        per_cam_min = 2 if is_test else 1  # a test camera holds a query and >= 1 gallery image
        m_max = min(num_cameras, images_per_id // per_cam_min)
        m = int(r.integers(2, m_max + 1))
        cams = sorted(int(c) for c in r.choice(num_cameras, m, replace=False))
        counts = per_cam_min + r.multinomial(images_per_id - per_cam_min * m, np.full(m, 1.0 / m))
        k = 0
        for cam, n in zip(cams, counts):
            for j in range(int(n)):
                if not is_test:
                    subset = "bounding_box_train"
                else:
                    subset = "query" if j == 0 else "bounding_box_test"  # one query per camera
                tasks.append(_Task(subset, "id", pid, k, cam))
                k += 1
    r = np.random.default_rng([seed, _S_SPLIT, 0])  # id 0 is never a person
    for i in range(num_distractors):
        tasks.append(_Task("bounding_box_test", "distractor", i, 0, int(r.integers(num_cameras))))
    for i in range(num_junk):
        tasks.append(_Task("bounding_box_test", "junk", i, 0, int(r.integers(num_cameras))))
    return tasks, train_ids, test_ids


def generate(
    out_dir: str | Path,
    num_ids: int = 100,
    num_cameras: int = 6,
    images_per_id: int = 12,
    seed: int = 0,
    num_distractors: int | None = None,
    num_junk: int | None = None,
    workers: int = 2,
    num_train_ids: int | None = None,
    size: tuple[int, int] = (128, 64),
    camera_variation: float = 1.0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write a synthetic dataset in the Market-1501 layout under `out_dir`.

    num_ids: identities in all; (num_ids + 1) // 2 train, the rest test (or
    `num_train_ids`), with disjoint ids. Every identity has `images_per_id` images over 2
    or more cameras; a test identity gets one query per camera it appears in and at
    least one gallery image in each. Distractors (id 0) and junk (id -1) go to the
    gallery; by default in Market's proportions (22% and 30% of the test-identity
    images). The files are the same bytes for a seed whatever `workers` is.
    `camera_variation` in [0, 1] scales how much the cameras differ (`soften_camera`):
    1 is the full-strength default, lower values give an easier set for quick checks.
    `progress(done, total)` is called from the main process. `synth.json` (the parameters)
    is written last, so its presence marks a complete dataset. Returns a summary dict.
    Bad options raise SynthOptionError (a DataError; the rules: reid_core/synth_options.py).
    """
    check_options({"num_ids": num_ids, "num_train_ids": num_train_ids, "num_cameras": num_cameras,
                   "images_per_id": images_per_id, "seed": seed, "num_distractors": num_distractors,
                   "num_junk": num_junk, "workers": workers, "size": size, "camera_variation": camera_variation})
    n_train = train_ids_of(num_ids, num_train_ids)
    n_test_images = (num_ids - n_train) * images_per_id
    num_distractors = round(0.22 * n_test_images) if num_distractors is None else num_distractors
    num_junk = round(0.30 * n_test_images) if num_junk is None else num_junk

    out = Path(out_dir).expanduser()
    subsets = ("bounding_box_train", "query", "bounding_box_test")
    meta = out / "synth.json"  # written last: its presence means "complete"
    if meta.exists() and overwrite:
        meta.unlink()
    for sub in subsets:
        d = out / sub
        if d.exists() and any(d.iterdir()):
            if not overwrite:
                raise DataError(f"{d} is not empty: choose another output folder or overwrite it (overwrite=True, --overwrite)")
            shutil.rmtree(d)
        d.mkdir(parents=True, exist_ok=True)

    tasks, train_ids, test_ids = _plan(seed, num_ids, n_train, num_cameras, images_per_id, num_distractors, num_junk)
    t0 = time.perf_counter()
    counts = {sub: 0 for sub in subsets}
    args = (seed, num_cameras, tuple(size), str(out), float(camera_variation))
    total = len(tasks)
    every = max(1, total // 20)
    if workers == 1:
        _init_worker(*args)
        results = map(_render_task, tasks)
        pool = None
    else:
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        pool = mp.get_context(method).Pool(workers, initializer=_init_worker, initargs=args)
        results = pool.imap_unordered(_render_task, tasks, chunksize=32)
    try:
        for i, sub in enumerate(results, 1):
            counts[sub] += 1
            if progress is not None and (i % every == 0 or i == total):
                progress(i, total)
    except BaseException:
        if pool is not None:
            pool.terminate()  # do not wait for the remaining images
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    seconds = time.perf_counter() - t0

    params = {"generator": "reid_core.data.synth", "seed": seed, "num_ids": num_ids, "num_train_ids": n_train,
              "num_cameras": num_cameras, "images_per_id": images_per_id, "num_distractors": num_distractors,
              "num_junk": num_junk, "size": list(size), "camera_variation": float(camera_variation)}
    meta.write_text(json.dumps(params, indent=2) + "\n")
    return {
        "root": str(out),
        **params,
        "num_test_ids": len(test_ids),
        "train_images": counts["bounding_box_train"],
        "query_images": counts["query"],
        "gallery_images": counts["bounding_box_test"],
        "total_images": total,
        "seconds": round(seconds, 3),
        "images_per_second": round(total / max(seconds, 1e-9), 1),
        "workers": workers,
    }
