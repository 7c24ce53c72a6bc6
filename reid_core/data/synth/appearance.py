"""The appearance model: what identifies a person across cameras, and how to draw one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .palette import (
    CLOTH_RGB,
    CLOTHES,
    HAIR_COLOURS,
    LOWER_WEIGHTS,
    RGB,
    SKIN_TONES,
    UPPER_WEIGHTS,
    jitter,
    pick,
)

_SHOE_COLOURS = {
    "black": np.array([30.0, 30, 30]),
    "white": np.array([225.0, 225, 220]),
    "brown": np.array([90.0, 60, 35]),
}


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
    num_colours = len(CLOTHES)
    upper_index = int(rng.choice(num_colours, p=UPPER_WEIGHTS))
    lower_index = int(rng.choice(num_colours, p=LOWER_WEIGHTS))
    pattern_index = int(rng.choice(num_colours, p=UPPER_WEIGHTS))
    if pattern_index == upper_index:  # a pattern must be visible
        pattern_index = (upper_index + 1 + int(rng.integers(num_colours - 1))) % num_colours
    # Skin: a random point on the line through the tones, darkest to lightest.
    tone = rng.uniform(0, len(SKIN_TONES) - 1)
    below = min(int(tone), len(SKIN_TONES) - 2)
    skin = SKIN_TONES[below] * (1 - (tone - below)) + SKIN_TONES[below + 1] * (tone - below)
    hair = np.array(pick(rng, [h[0] for h in HAIR_COLOURS], [h[1] for h in HAIR_COLOURS]), dtype=np.float64)
    pattern = str(pick(rng, ["solid", "stripes", "checks", "logo"], [0.5, 0.2, 0.12, 0.18]))
    shoes_choice = str(pick(rng, ["black", "white", "brown", "colour"], [0.4, 0.3, 0.15, 0.15]))
    # The coloured-shoe draw happens whatever the choice (the default is evaluated first):
    # making it conditional would shift every later draw and change all datasets.
    shoes = _SHOE_COLOURS.get(shoes_choice, CLOTH_RGB[int(rng.integers(num_colours))])
    bag = str(pick(rng, ["none", "backpack", "shoulder", "handbag"], [0.45, 0.25, 0.2, 0.1]))
    bag_colour = CLOTH_RGB[int(rng.choice(num_colours, p=LOWER_WEIGHTS))]
    return PersonAppearance(
        skin=jitter(rng, skin, 0.05, 5),
        hair=jitter(rng, hair, 0.1, 6),
        hair_long=bool(rng.random() < 0.35),
        upper=jitter(rng, CLOTH_RGB[upper_index]),
        upper2=jitter(rng, CLOTH_RGB[pattern_index]),
        upper_pattern=pattern,
        pattern_scale=float(rng.uniform(0.025, 0.05) if pattern == "stripes" else rng.uniform(0.04, 0.07)),
        long_sleeves=bool(rng.random() < 0.55),
        lower=jitter(rng, CLOTH_RGB[lower_index]),
        lower_kind=str(pick(rng, ["trousers", "shorts", "skirt"], [0.75, 0.15, 0.10])),
        shoes=jitter(rng, shoes, 0.08, 5),
        bag=bag,
        bag_colour=jitter(rng, bag_colour),
        height=float(rng.uniform(0.86, 1.0)),
        width=float(rng.uniform(0.2, 0.3)),
        leg_ratio=float(rng.uniform(0.43, 0.52)),
        head=float(rng.uniform(0.06, 0.075)),
    )
