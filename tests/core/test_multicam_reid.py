"""Multicam identities with ReID at entries: the ReID step, the MOT metrics, the synthetic scene (fast)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from reid_core.errors import CheckpointError, DataError
from reid_core.multicam.metrics import compute_mot_metrics, distance_matrix
from reid_core.multicam.reid_step import (
    Entry,
    Exit,
    IdentityGallery,
    ReIDStep,
    assign,
    calibrate_threshold,
    entry_correctness,
    run_sequence,
)
from reid_core.multicam.scene import SceneConfig, build_scene


def unit(*v: float) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def rot(angle: float) -> np.ndarray:
    """A unit vector in the (e0, e1) plane at `angle` radians from e0 (4-D)."""
    return np.array([math.cos(angle), math.sin(angle), 0.0, 0.0], dtype=np.float32)


E = np.eye(4, dtype=np.float32)


# ---------------------------------------------------------------------------------
# Gallery and assignment


def test_assign_reuses_the_closest_identity():
    g = IdentityGallery(max_images_per_id=4)
    for i in range(3):
        g.add(i, E[i][None])
    a = assign(np.stack([unit(0.1, 1, 0, 0), unit(0, 1, 0.1, 0)]), g, threshold=0.5)
    assert a.identity == 1 and not a.is_new and a.reason == "match"
    assert [c[0] for c in a.candidates][0] == 1 and len(a.candidates) == 3
    assert a.candidates == tuple(sorted(a.candidates, key=lambda c: c[1]))


def test_new_identity_above_threshold():
    g = IdentityGallery()
    g.add(7, E[0][None])
    a = assign(E[3][None], g, threshold=0.5)
    assert a.identity is None and a.is_new and a.reason == "above_threshold"
    assert a.distance == pytest.approx(math.sqrt(2), abs=1e-6)
    assert a.candidates[0][0] == 7


def test_threshold_boundary_reuses_at_equality():
    g = IdentityGallery()
    g.add(3, rot(0.0)[None])
    q = rot(0.3)[None]
    d = 2 * math.sin(0.15)  # chord of a 0.3 rad arc
    a = assign(q, g, threshold=1.0)
    assert a.distance == pytest.approx(d, abs=1e-6)
    assert assign(q, g, threshold=a.distance).identity == 3  # distance == threshold: re-use
    assert assign(q, g, threshold=float(np.nextafter(a.distance, 0.0))).identity is None


def test_mean_of_min_aggregation():
    """Distance = mean over query crops of the min over the identity's stored embeddings."""
    g = IdentityGallery()
    g.add(0, np.stack([rot(0.0), rot(1.0)]))
    q = np.stack([rot(0.2), rot(0.9)])
    expect = (2 * math.sin(0.1) + 2 * math.sin(0.05)) / 2
    assert assign(q, g, threshold=2.0).distance == pytest.approx(expect, abs=1e-6)


def test_embeddings_are_normalised():
    g = IdentityGallery()
    g.add(0, 5.0 * E[0][None])
    assert assign(0.1 * E[0][None], g, threshold=0.0).identity == 0


def test_empty_gallery_gives_a_new_identity():
    a = assign(E[0][None], IdentityGallery(), threshold=1.0)
    assert a.identity is None and a.distance == math.inf and a.candidates == () and a.reason == "empty_gallery"


@pytest.mark.parametrize("policy", ["recent", "diverse"])
def test_gallery_is_bounded_per_identity(policy):
    rng = np.random.default_rng(0)
    g = IdentityGallery(max_images_per_id=5, policy=policy)
    emb = rng.normal(size=(15, 8)).astype(np.float32)
    for s in range(0, 15, 4):
        g.add(1, emb[s : s + 4])
    g.add(2, emb[:2])
    kept = g.embeddings(1)
    assert kept.shape == (5, 8) and g.embeddings(2).shape == (2, 8)
    newest = emb[-1] / np.linalg.norm(emb[-1])
    assert np.allclose(kept[-1], newest, atol=1e-6)  # the newest is always kept, last
    if policy == "recent":
        assert np.allclose(kept, emb[-5:] / np.linalg.norm(emb[-5:], axis=1, keepdims=True), atol=1e-6)


def test_diverse_policy_keeps_an_outlying_view():
    g = IdentityGallery(max_images_per_id=2, policy="diverse")
    g.add(0, np.stack([rot(1.2), rot(0.0), rot(0.01), rot(0.02)]))  # an old, different view first
    kept = g.embeddings(0)
    assert np.allclose(kept[0], rot(1.2), atol=1e-6) and np.allclose(kept[1], rot(0.02), atol=1e-6)


def test_bad_inputs_are_clear_errors():
    g = IdentityGallery()
    g.add(0, E[0][None])
    with pytest.raises(ValueError, match="no embedding"):
        assign(np.zeros((0, 4), np.float32), g, 0.5)  # a zero-size crop gave no embedding
    with pytest.raises(ValueError, match="dimension"):
        assign(np.ones((1, 3), np.float32), g, 0.5)
    with pytest.raises(ValueError, match="non-finite"):
        assign(np.full((1, 4), np.nan, np.float32), g, 0.5)
    with pytest.raises(ValueError, match="max_images_per_id"):
        IdentityGallery(max_images_per_id=0)


def test_reid_step_enter_exit():
    step = ReIDStep(threshold=0.5, max_images_per_id=4)
    a_id, a = step.enter(10, E[0][None])  # empty gallery -> new
    assert a.reason == "empty_gallery" and a_id == 0
    b_id, _ = step.enter(11, E[1][None])
    assert b_id == 1 and step.active() == {10: 0, 11: 1}
    step.exit(10, np.stack([E[0], unit(1, 0.1, 0, 0)]))
    assert step.gallery.identities() == [0] and len(step.gallery.embeddings(0)) == 3  # query + inside
    # Person 1 is still inside: an entering look-alike of 1 cannot take identity 1.
    c_id, c = step.enter(12, unit(0.1, 1, 0, 0)[None])
    assert c_id == 2 and c.is_new
    d_id, d = step.enter(13, unit(1, 0.05, 0, 0)[None])  # person 0 comes back
    assert d_id == 0 and d.reason == "match" and 0 not in step.gallery
    step.exit(13, None)
    assert len(step.gallery.embeddings(0)) == 4  # bounded: 3 stored + 1 query


def test_no_crash_mid_sequence():
    """An entry without any usable crop (zero-size crops filtered out, NaN) opens a new
    identity; the sequence goes on."""
    events = [
        Entry(0, E[0][None], person=0),
        Exit(0, E[0][None]),
        Entry(1, np.zeros((0, 4), np.float32), person=1),  # no crop at all
        Entry(2, np.full((2, 4), np.nan, np.float32), person=0),  # garbage only
        Exit(1, np.zeros((0, 4), np.float32)),
        Exit(2, np.zeros((0, 4), np.float32)),
        Entry(3, unit(1, 0.05, 0, 0)[None], person=0),
    ]
    res = run_sequence(events, threshold=0.5)
    reasons = [a.reason for _, a in res.assignments]
    assert reasons[:3] == ["empty_gallery", "no_query", "no_query"]
    assert res.identities[3] == 0 and res.assignments[-1][1].reason == "match"


def test_entry_correctness_rules():
    z = np.zeros((0, 4), np.float32)
    ev = [Entry(0, z, 5), Exit(0, z), Entry(1, z, 6), Entry(2, z, 5), Exit(2, z), Exit(1, z), Entry(3, z, 6)]
    # Right: 0 new, 1 new, 2 re-uses 0, 3 re-uses the identity of track 1.
    assert entry_correctness(ev, {0: 0, 1: 1, 2: 0, 3: 1}) == [True, True, True, True]
    # No ReID: first visits right, re-entries wrong.
    assert entry_correctness(ev, {0: 0, 1: 1, 2: 2, 3: 3}) == [True, True, False, False]
    # Person 6 wrongly takes 5's identity; when 5 comes back its identity is inside -> "new" is right.
    ev2 = [Entry(0, z, 5), Exit(0, z), Entry(1, z, 6), Entry(2, z, 5)]
    assert entry_correctness(ev2, {0: 0, 1: 0, 2: 1}) == [True, False, True]
    # Re-using an identity that is inside on another track is wrong.
    assert entry_correctness(ev2, {0: 0, 1: 1, 2: 1}) == [True, True, False]


def _calibration_events() -> list:
    """Three people; each crop = the person's direction + noise 0.15 rad: within < ~0.45,
    between ~1.41: any threshold in between is right."""
    rng = np.random.default_rng(1)
    base = np.eye(6, dtype=np.float32)
    ev, track = [], 0
    for _visit in range(3):
        for p in range(3):
            q = base[p] + rng.normal(0, 0.1, (2, 6)).astype(np.float32)
            g = base[p] + rng.normal(0, 0.1, (3, 6)).astype(np.float32)
            ev += [Entry(track, q, p), Exit(track, g)]
            track += 1
    return ev


def test_calibrate_threshold_picks_the_separating_range():
    ev = _calibration_events()
    cal = calibrate_threshold(ev)
    assert cal.accuracy == 1.0
    assert 0.45 < cal.threshold < 1.3
    assert run_sequence(ev, 0.0).accuracy < 1.0 and run_sequence(ev, 1.99).accuracy < 1.0
    with pytest.raises(ValueError, match="no entry with a known person"):
        calibrate_threshold([Entry(0, np.eye(2)[:1])])


# ---------------------------------------------------------------------------------
# Metrics (motmetrics) against hand-computed values


def test_distance_matrix_is_nan_beyond_the_gate():
    d = distance_matrix([(0, 0), (1, 0)], [(0, 0.3), (5, 5)], max_distance=0.5)
    assert d[0, 0] == pytest.approx(0.3) and np.isnan(d[0, 1]) and np.isnan(d[1, 1])
    assert distance_matrix([], [(0, 0)]).shape == (0, 1)


def test_mot_metrics_on_a_hand_made_sequence():
    """2 people (A=1, B=2), 4 frames: an id switch on A (1 -> 3) at frame 2, a miss of B at
    frame 3, false positives at frames 0 and 3.
    #gt = 8, FN = 1, FP = 2, IDSW = 1: MOTA = 1 - 4/8 = 0.5.
    #pred = 9; best one-to-one identity matching: A-1 (2 frames) or A-3 (2), B-2 (3):
    IDTP = 5, IDF1 = 2*5 / (8 + 9) = 10/17, IDP = 5/9, IDR = 5/8."""
    a, b, far = (0.0, 0.0), (5.0, 0.0), (2.5, 2.5)
    frames = [
        ([1, 2], [a, b], [1, 2, 5], [a, b, far]),
        ([1, 2], [a, b], [1, 2], [a, b]),
        ([1, 2], [a, b], [3, 2], [(0.1, 0.0), b]),
        ([1, 2], [a, b], [3, 4], [a, far]),
    ]
    m = compute_mot_metrics(frames, max_distance=0.5)
    assert (m["num_objects"], m["num_predictions"]) == (8, 9)
    assert (m["num_misses"], m["num_false_positives"], m["num_switches"]) == (1, 2, 1)
    assert m["mota"] == pytest.approx(0.5)
    assert m["idf1"] == pytest.approx(10 / 17)
    assert m["idp"] == pytest.approx(5 / 9) and m["idr"] == pytest.approx(5 / 8)
    assert m["motp"] == pytest.approx(0.1 / 7)  # mean matched distance (metres)
    assert m["num_frames"] == 4


def test_a_new_id_after_a_gap_is_a_switch():
    """Why no-ReID loses IDF1 and a little MOTA: re-entering with a new id is an id switch."""
    p = (1.0, 1.0)
    frames = [([1], [p], [10], [p]), ([], [], [], []), ([1], [p], [11], [p])]
    m = compute_mot_metrics(frames)
    assert m["num_switches"] == 1 and m["mota"] == pytest.approx(0.5) and m["idf1"] == pytest.approx(0.5)


# ---------------------------------------------------------------------------------
# Scene


@pytest.fixture(scope="module")
def scene():
    return build_scene(SceneConfig(seed=3, minutes=2.0))


def test_scene_is_deterministic_per_seed(scene):
    again = build_scene(SceneConfig(seed=3, minutes=2.0))
    for k in ("gt_frame", "gt_person", "gt_visit", "gt_xy", "det_frame", "det_track", "det_xy", "det_ghost"):
        assert np.array_equal(getattr(scene, k), getattr(again, k)), k
    assert scene.visits == again.visits
    v = scene.visits[0]
    for f, c in v.query[:2] + v.gallery[:2]:
        assert scene.crop(v.index, f, c).tobytes() == again.crop(v.index, f, c).tobytes()
    other = build_scene(SceneConfig(seed=4, minutes=2.0))
    assert not np.array_equal(other.gt_xy[:50], scene.gt_xy[:50]) or other.visits != scene.visits
    assert other.identities != scene.identities


def test_scene_shape(scene):
    s = scene.summary()
    cfg = scene.config
    assert s["frames"] == int(cfg.minutes * 60 * cfg.fps)
    assert 1 <= s["max_inside"] <= cfg.max_inside
    assert s["visits"] >= 10 and s["re_entries"] >= 1
    assert (scene.gt_xy >= 0).all() and (scene.gt_xy[:, 0] <= 5).all() and (scene.gt_xy[:, 1] <= 6).all()
    # One identity is never inside twice at the same time.
    pairs = set(zip(scene.gt_frame.tolist(), scene.gt_person.tolist()))
    assert len(pairs) == len(scene.gt_frame)
    # Tracker output: misses and ghosts exist but are few.
    assert 0 < len(scene.det_frame) - int(scene.det_ghost.sum()) < len(scene.gt_frame)
    for v in scene.visits:
        assert v.start <= v.decision_frame <= v.end
        assert len({c for _, c in v.query}) == len(v.query) <= 4 * cfg.query_frames
        assert len(v.gallery) <= cfg.gallery_per_visit


def test_scene_crops_are_small_and_cached(scene):
    v = scene.visits[1]
    f, c = v.query[0]
    n = scene.renders
    im = scene.crop(v.index, f, c)
    assert scene.renders > n
    assert 48 <= im.height <= 96 and im.width == im.height // 2
    n = scene.renders
    assert scene.crop(v.index, f, c) is im and scene.renders == n  # cached, not rendered again


def test_scene_people_are_not_training_identities():
    from reid_core.data.synth import sample_identity

    s = build_scene(SceneConfig(seed=0, minutes=0.2))
    train = {sample_identity(np.random.default_rng([0, 0, pid])) for pid in range(1, 40)}
    assert not train & set(s.identities)


def test_scene_config_is_validated():
    with pytest.raises(ValueError, match="minutes"):
        SceneConfig(minutes=0)
    with pytest.raises(ValueError, match="box_height"):
        SceneConfig(box_height=(10, 20))


# ---------------------------------------------------------------------------------
# Evaluation plumbing (no training: a colour embedder and an untrained model)


def colour_embed(images):
    """A hand-made embedder: mean colours of the upper and lower body (no learning)."""
    out = []
    for im in images:
        a = np.asarray(im.convert("RGB").resize((16, 32)), dtype=np.float32) / 255
        out.append(np.concatenate([a[6:16, 4:12].reshape(-1, 3).mean(0), a[17:28, 4:12].reshape(-1, 3).mean(0)]) - 0.5)
    return np.array(out)


def test_multicam_eval_variants_on_a_short_scene():
    from reid_core.multicam.evaluate import run_multicam_eval

    r = run_multicam_eval(colour_embed, seed=5, calibration_seed=6, minutes=1.5)
    v = r["variants"]
    assert set(v) == {"no_reid", "reid", "oracle"}
    assert v["oracle"]["entry_accuracy"] == 1.0
    first = r["scene"]["identities_seen"] / r["scene"]["visits"]
    assert v["no_reid"]["entry_accuracy"] == pytest.approx(first)
    # The within-room tracker is the same: misses and false positives do not depend on ReID.
    for k in ("num_misses", "num_false_positives", "num_objects", "num_predictions"):
        assert v["no_reid"][k] == v["reid"][k] == v["oracle"][k], k
    assert v["oracle"]["idf1"] >= v["reid"]["idf1"] and v["oracle"]["idf1"] >= v["no_reid"]["idf1"]
    assert 0.0 <= r["threshold"] <= 2.0 and r["calibration"]["seed"] == 6
    assert r["entry_accuracy"] == v["reid"]["entry_accuracy"]
    with pytest.raises(ValueError, match="calibration_seed"):
        run_multicam_eval(colour_embed, seed=5, calibration_seed=5, minutes=0.5)


def test_tracks_that_overlap_in_time_never_share_an_identity():
    """An embedder that sees everyone as the same person and a threshold that re-uses
    whenever it can: a person entering while another is still inside never takes their
    identity (each frame's hypothesis ids stay unique, which motmetrics requires)."""
    from reid_core.multicam.evaluate import evaluate_identities, scene_events
    from reid_core.multicam.reid_step import run_sequence

    s = build_scene(SceneConfig(seed=8, minutes=2.0))
    same = {(v.index, f, c): np.ones(4, np.float32) for v in s.visits for f, c in v.query + v.gallery}
    seq = run_sequence(scene_events(s, same), threshold=2.0)
    assert len(set(seq.identities.values())) < len(s.visits)  # identities were re-used
    for a in s.visits:
        for b in s.visits:
            if a.index < b.index and seq.identities[a.index] == seq.identities[b.index]:
                assert a.end < b.start
    evaluate_identities(s, seq.identities)  # raises on a duplicate id in a frame


def test_zero_size_crop_is_a_clear_error():
    from reid_core.models import build_model
    from reid_core.multicam.evaluate import ModelEmbedder

    emb = ModelEmbedder(build_model({"width_multiplier": 0.25, "depth_multiplier": 0.3, "num_classes": 4}))
    out = emb([Image.new("RGB", (24, 48)), Image.new("RGB", (48, 96))])  # any size: resized to 160x64
    assert out.shape[0] == 2 and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    with pytest.raises(DataError, match="zero size"):
        emb([Image.new("RGB", (0, 48))])


def test_checkpoint_of_the_wrong_kind_is_refused(tmp_path):
    from reid_core.multicam.evaluate import load_model

    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "state_dict.pt")  # a bare state_dict
    with pytest.raises(CheckpointError, match="not a compact-reid"):
        load_model(tmp_path / "state_dict.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError):
        load_model({"kind": "something-else", "model": {}, "config": {}})
    with pytest.raises(CheckpointError, match="expected a checkpoint"):
        load_model(42)


def test_cli_is_registered_and_checks_seeds(capsys):
    from orchestration.cli import build_parser, main

    args = build_parser().parse_args(["multicam-eval", "--checkpoint", "a.pt", "--checkpoint", "b.pt"])
    assert args.checkpoint == ["a.pt", "b.pt"] and args.seed == 0 and args.calibration_seed == 1
    assert main(["multicam-eval", "--checkpoint", "a.pt", "--seed", "2", "--calibration-seed", "2"]) == 2
    assert "must differ" in capsys.readouterr().err
    assert main(["multicam-eval", "--checkpoint", "/nonexistent/w.pt", "--minutes", "0.2"]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_track_eval_is_a_deprecated_alias(capsys):
    from orchestration.cli import build_parser, main

    args = build_parser().parse_args(["track-eval", "--checkpoint", "a.pt", "--checkpoint", "b.pt"])
    assert args.checkpoint == ["a.pt", "b.pt"] and args.seed == 0 and args.calibration_seed == 1
    assert main(["track-eval", "--checkpoint", "a.pt", "--seed", "2", "--calibration-seed", "2"]) == 2
    err = capsys.readouterr().err
    assert "track-eval is deprecated: use compact-reid multicam-eval" in err and "must differ" in err
