"""Camera styles: how each camera changes the picture, and how to soften them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ...errors import DataError
from . import streams
from .palette import CLOTH_RGB, CLOTHES, RGB, SCENE, jitter


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
    wall, floor = SCENE[rng.choice(len(SCENE), 2, replace=False)]
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
        pole_colour=jitter(rng, SCENE[int(rng.integers(len(SCENE)))], 0.3, 20),
        box_colour=jitter(rng, CLOTH_RGB[int(rng.integers(len(CLOTHES)))], 0.2, 10),
        wall=jitter(rng, wall, 0.15, 10),
        floor=jitter(rng, floor, 0.15, 10),
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

    def toward(value: float, neutral: float) -> float:
        return float(neutral + (value - neutral) * variation)

    def desaturate(colour: RGB) -> RGB:
        grey = sum(colour) / 3.0
        return tuple(grey + (x - grey) * variation for x in colour)  # type: ignore[return-value]

    return dataclasses.replace(
        camera,
        white_balance=tuple(toward(g, 1.0) for g in camera.white_balance),  # type: ignore[arg-type]
        brightness=toward(camera.brightness, 1.0),
        saturation=toward(camera.saturation, 1.0),
        contrast=toward(camera.contrast, 1.0),
        gamma=toward(camera.gamma, 1.0),
        gradient=(camera.gradient[0] * variation, camera.gradient[1] * variation),
        noise=camera.noise * variation,
        blur=camera.blur * variation,
        jpeg_quality=round(toward(camera.jpeg_quality, 95)),
        resolution=toward(camera.resolution, 1.0),
        occlusion_p=camera.occlusion_p * variation,
        wall=desaturate(camera.wall),
        floor=desaturate(camera.floor),
    )


def camera_styles(seed: int, num_cameras: int, variation: float = 1.0) -> list[CameraStyle]:
    """The cameras of dataset `seed` (camera i depends on (seed, i) only), softened by `variation`."""
    return [
        soften_camera(sample_camera(np.random.default_rng([seed, streams.CAMERA, i]), i), variation)
        for i in range(num_cameras)
    ]
