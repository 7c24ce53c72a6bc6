"""The value rules of the synthetic generator's options, importing nothing heavy.

`reid_core.data.synth.generate` checks its arguments here, and the sweep spec checks a
`dataset.synthetic` block here before anything is drawn (without numpy, PIL or torch), so
each rule and its message are written once. An option left out (or None) takes
generate()'s default, which is always valid.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .errors import DataError

__all__ = ["SynthOptionError", "check_options", "train_ids_of"]

# option -> (rule on the given value, what the value must be)
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "num_ids": (lambda v: 2 <= v <= 9999, "must be in 2..9999 (4-digit ids)"),
    "num_train_ids": (lambda v: v >= 1, "must be >= 1"),
    "num_cameras": (lambda v: 2 <= v <= 9, "must be in 2..9 (file names use one digit)"),
    "images_per_id": (lambda v: v >= 4, "must be >= 4 (2 cameras x (query + gallery))"),
    "seed": (lambda v: v >= 0, "must be >= 0"),
    "num_distractors": (lambda v: v >= 0, "must be >= 0"),
    "num_junk": (lambda v: v >= 0, "must be >= 0"),
    "workers": (lambda v: v >= 1, "must be >= 1"),
    "size": (lambda v: len(v) == 2 and all(x >= 1 for x in v), "must be [height, width], two positive integers"),
    "camera_variation": (lambda v: isinstance(v, (int, float)) and 0 <= v <= 1, "must be in [0, 1]"),
}


class SynthOptionError(DataError):
    """A generator option out of range: `option` (generate()'s name) and `problem`."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"synthetic dataset: {option} {problem}")
        self.option, self.problem = option, problem


def train_ids_of(num_ids: int, num_train_ids: int | None) -> int:
    """Training identities: `num_train_ids`, by default half of the identities (rounded up)."""
    return (num_ids + 1) // 2 if num_train_ids is None else num_train_ids


def check_options(options: Mapping[str, Any]) -> None:
    """Raise SynthOptionError for the first option out of range (generate()'s names)."""
    for name, value in options.items():
        if name not in _RULES:
            raise TypeError(f"synthetic dataset: unknown option {name!r}; allowed: {', '.join(_RULES)}")
        rule, must = _RULES[name]
        if value is not None and not rule(value):
            raise SynthOptionError(name, f"{must}, got {value!r}")
    num_ids = options.get("num_ids")
    if num_ids is not None and train_ids_of(num_ids, options.get("num_train_ids")) >= num_ids:
        raise SynthOptionError(
            "num_train_ids",
            f"must be below the number of identities ({num_ids}): the rest "
            f"are the test identities, got {options['num_train_ids']}",
        )
