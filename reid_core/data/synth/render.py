"""Rendering: the camera's scene, occluders and sensor effects around the person's figure."""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .appearance import PersonAppearance
from .cameras import CameraStyle
from .figure import colourise, draw_labels
from .palette import CLOTH_RGB, CLOTHES, SCENE
from .pose import Pose, sample_pose

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
        colour = wall * rng.uniform(0.5, 1.4, 3) if rng.random() < 0.6 else SCENE[int(rng.integers(len(SCENE)))]
        draw.rectangle((x0, y0, x0 + bw, hz), fill=tuple(int(v) for v in np.clip(colour, 0, 255)))
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
        colour = SCENE[int(rng.integers(len(SCENE)))] * rng.uniform(0.4, 1.2, 3)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape(
            (x0, hz - bh * 0.6, x0 + rng.uniform(6, 25), hz + bh * 0.4),
            fill=tuple(int(v) for v in np.clip(colour, 0, 255)),
        )
    arr = np.asarray(img, dtype=np.float32)
    # Low-frequency lighting blotches: mostly luminance, a little chroma.
    blotch = rng.normal(0, 40, (6, 4, 1)) + rng.normal(0, 8, (6, 4, 3))
    low = np.asarray(
        Image.fromarray((128 + blotch).clip(0, 255).astype(np.uint8)).resize((w, h), Image.BILINEAR), dtype=np.float32
    )
    arr = arr + (low - 128) * 0.45 + rng.normal(0, 5, arr.shape).astype(np.float32)
    return np.clip(arr, 0, 255)


def _background(camera: CameraStyle, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random window of the camera's scene, resampled to h x w, with passing clutter."""
    tex = _camera_texture(camera)
    zoom = rng.uniform(0.45, 0.65)  # the window's share of the scene
    ch, cw = _TEX_H * zoom, _TEX_W * zoom
    y0 = rng.uniform(0, _TEX_H - ch)
    x0 = rng.uniform(0, _TEX_W - cw)
    ys = (y0 + np.arange(h) * (ch / h)).astype(np.int64)
    xs = (x0 + np.arange(w) * (cw / w)).astype(np.int64)
    bg = tex[ys[:, None], xs[None, :]]
    for _ in range(int(rng.integers(0, 3))):
        bh, bw = int(rng.uniform(0.1, 0.5) * h), int(rng.uniform(0.1, 0.4) * w)
        yy, xx = int(rng.integers(0, h)), int(rng.integers(-bw // 2, w))
        colour = 0.5 * CLOTH_RGB[int(rng.integers(len(CLOTHES)))] + 0.5 * np.asarray(camera.wall)  # muted, far away
        bg[yy : yy + bh, max(0, xx) : xx + bw] = colour * rng.uniform(0.6, 1.0)
    return bg


def _occlude(img: np.ndarray, camera: CameraStyle, rng: np.random.Generator) -> None:
    """Paint one occluder over `img` in place: a pole, a low box or a passer-by."""
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
        colour = CLOTH_RGB[int(rng.integers(len(CLOTHES)))] * rng.uniform(0.6, 1.1)
        if rng.random() < 0.5:
            img[y0:, :pw] = colour
        else:
            img[y0:, w - pw :] = colour


def _camera_effects(img: np.ndarray, camera: CameraStyle, rng: np.random.Generator) -> np.ndarray:
    """The camera's colour cast, exposure, lighting slope, contrast, gamma and noise (to uint8)."""
    h, w, _ = img.shape
    grey = img.mean(axis=2, keepdims=True)
    img = grey + camera.saturation * (img - grey)
    gain = np.asarray(camera.white_balance, dtype=np.float32) * np.float32(
        camera.brightness * np.exp(rng.normal(0, 0.08))
    )
    gy = camera.gradient[0] + rng.normal(0, 0.05)
    gx = camera.gradient[1] + rng.normal(0, 0.05)
    light = (
        1.0
        + gy * (np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None])
        + gx * (np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :])
    )
    img = img * gain * light[:, :, None]
    img = (img - 128.0) * camera.contrast + 128.0
    img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** camera.gamma
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(camera.noise)
    return np.clip(img, 0, 255).astype(np.uint8)


def _finish(
    arr: np.ndarray, camera: CameraStyle, rng: np.random.Generator, size: tuple[int, int], jpeg: bool
) -> Image.Image:
    """Upscale to `size`, blur, and optionally pass through the camera's JPEG quality."""
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
    """The size to draw at: the camera's resolution loss, jittered, then upscaled by `_finish`."""
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
    labels, geo = draw_labels(appearance, pose, h, w)
    person = colourise(appearance, labels, geo)
    mask = labels > 0
    if pose.direction == "left":  # drawn facing right
        person, mask = person[:, ::-1], mask[:, ::-1]
    img = np.where(mask[:, :, None], person, bg)
    if rng.random() < camera.occlusion_p:
        _occlude(img, camera, rng)
    return _finish(_camera_effects(img, camera, rng), camera, rng, size, jpeg)


def render_background(
    camera: CameraStyle, rng: np.random.Generator, size: tuple[int, int] = (128, 64), jpeg: bool = False
) -> Image.Image:
    """A crop of the camera's scene with no person (a false detection: 'junk')."""
    h, w = _render_size(camera, rng, size)
    img = _background(camera, rng, h, w)
    if rng.random() < 0.5:
        _occlude(img, camera, rng)
    return _finish(_camera_effects(img, camera, rng), camera, rng, size, jpeg)
