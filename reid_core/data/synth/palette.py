"""Colour tables shared by the appearance model and the renderer (RGB, 0-255)."""

from __future__ import annotations

import numpy as np

RGB = tuple[float, float, float]

# Clothing colours with (upper, lower) weights: dark and neutral colours dominate, as in
# real crowds, so that many people share their main colour.
CLOTHES = [
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
CLOTH_RGB = np.array([c[0] for c in CLOTHES], dtype=np.float64)
UPPER_WEIGHTS = np.array([c[1] for c in CLOTHES]) / sum(c[1] for c in CLOTHES)
LOWER_WEIGHTS = np.array([c[2] for c in CLOTHES]) / sum(c[2] for c in CLOTHES)
SKIN_TONES = np.array([(240, 205, 180), (205, 155, 115), (150, 100, 70), (85, 58, 42)], dtype=np.float64)
HAIR_COLOURS = [
    ((20, 18, 16), 0.40),
    ((60, 40, 25), 0.25),
    ((110, 75, 45), 0.12),
    ((200, 170, 110), 0.10),
    ((155, 155, 155), 0.08),
    ((140, 60, 30), 0.05),
]
# Walls, floors and street furniture.
SCENE = np.array(
    [
        (150, 150, 145),
        (120, 110, 100),
        (170, 160, 140),
        (90, 95, 100),
        (130, 140, 120),
        (180, 180, 185),
        (100, 80, 70),
        (60, 65, 70),
        (140, 120, 110),
        (110, 125, 140),
    ],
    dtype=np.float64,
)


def to_rgb(colour: np.ndarray) -> RGB:
    """A colour clipped to 0-255, as a tuple of Python floats (hashable, exact in pickles)."""
    return tuple(float(v) for v in np.clip(colour, 0, 255))  # type: ignore[return-value]


def jitter(rng: np.random.Generator, colour: np.ndarray, rel: float = 0.12, absolute: float = 8.0) -> RGB:
    """`colour` with a random per-channel gain and offset."""
    return to_rgb(colour * rng.uniform(1 - rel, 1 + rel, 3) + rng.normal(0, absolute, 3))


def pick(rng: np.random.Generator, options: list, weights: list[float]) -> object:
    """One of `options`, drawn with the given (unnormalised) weights."""
    return options[int(rng.choice(len(options), p=np.asarray(weights) / sum(weights)))]
