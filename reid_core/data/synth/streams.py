"""Ids of the random streams: every draw comes from np.random.default_rng([seed, STREAM, ...]).

An image's stream depends on (seed, kind, id, image index) only, never on the order in
which images are rendered: that is what makes the output the same bytes for a seed
whatever the number of worker processes. Changing a value changes every dataset.
"""

from __future__ import annotations

IDENTITY = 0  # [seed, IDENTITY, pid]: a person's appearance
CAMERA = 1  # [seed, CAMERA, camera index]: a camera's style
SPLIT = 2  # [seed, SPLIT] / [seed, SPLIT, pid]: train/test split, cameras and image counts
TRACK = 3  # [seed, TRACK, pid, camera]: how a person walks through one camera's view
IMAGE = 4  # [seed, IMAGE, pid, image]: one image of an identity
DISTRACTOR = 5  # [seed, DISTRACTOR, n]: one distractor image
JUNK = 6  # [seed, JUNK, n]: one junk image
NAME = 7  # [seed, NAME, kind, number, image]: the random parts of a file name
