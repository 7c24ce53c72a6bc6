"""Fixtures shared across test modules (every folder under tests/)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def make_tiny_market(tmp_path_factory):
    """`make(name, seed)`: a generated Market-1501-style folder (16 ids, 3 cameras, 6 images
    each) under a fresh temporary folder `name`; its root."""

    def make(name: str, seed: int) -> Path:
        from reid_core.data.synth import generate

        root = tmp_path_factory.mktemp(name) / "market"
        generate(root, num_ids=16, num_cameras=3, images_per_id=6, seed=seed, workers=1)
        return root

    return make


@dataclass
class LearnedRun:
    summary: dict[str, Any]
    config: Any
    weights: Path  # <run>/weights/final.pt: the last weights, for multicam-eval


@pytest.fixture(scope="session")
def learned_compact(tmp_path_factory) -> LearnedRun:
    """The learning check's run (tests/learning_check.py), trained once per session (about
    3 min on 2 cores). tests/core/test_trainer.py checks that it learned; the multicam tests use
    its weights, so they score a model that learned (a model trained on a few dozen ids has
    a rank-1 near 0 on unseen ids, and whether it then beats no-ReID is down to the seed).
    """
    import learning_check

    root = learning_check.generate_data(tmp_path_factory.mktemp("learn") / "market")
    out = tmp_path_factory.mktemp("learned") / "learned-compact"
    t = learning_check.train(root, out, seed=0)
    weights = t.save_weights(out / "weights" / "final.pt", "final")
    return LearnedRun(summary=dict(t.summary), config=t.cfg, weights=weights)


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """One real S3 endpoint for the whole session (tests/s3_server.py: moto's server on a
    loopback port, authentication enforced). Tests use their own prefixes in its bucket."""
    from s3_server import LocalS3

    server = LocalS3(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3, monkeypatch, tmp_path):
    """The standard variables pointing every client at the session's S3 (admin credentials),
    a staging cache of the test's own, and a prefix of the test's own: s3://BUCKET/<test>."""
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COMPACT_REID_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COMPACT_REID_S3_ATTEMPTS", "3")
    return f"s3://{s3.bucket}/{tmp_path.name}"
