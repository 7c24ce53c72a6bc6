"""Loading Market-1501-layout folders: parsing, junk/distractors, errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reid_core.data.datasets import DukeMTMCreID, ImageDataset, Market1501, ReIDFolderDataset, find_root, load_dataset
from reid_core.data.synth import generate
from reid_core.errors import DataError


def _jpg(path: Path, colour=(120, 60, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 128), colour).save(path, quality=90)


def _make(root: Path, files: dict[str, list[str]]) -> Path:
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in files.get(folder, []):
            if name.endswith(".jpg"):
                _jpg(root / folder / name)
            else:
                (root / folder / name).write_bytes(b"not an image")  # ignored by extension
    return root


HAND_MADE = {
    "bounding_box_train": [
        "0002_c1s1_000451_03.jpg",
        "0002_c2s1_000551_01.jpg",
        "0007_c3s3_000101_00.jpg",
        "0000_c1s1_000001_00.jpg",
        "-1_c1s1_000002_00.jpg",
        "Thumbs.db",
    ],
    "query": ["0003_c1s1_000100_00.jpg", "0005_c2s1_000100_00.jpg"],
    "bounding_box_test": [
        "0003_c2s1_000200_00.jpg",
        "0003_c1s1_000300_00.jpg",
        "0005_c2s1_000200_00.jpg",
        "0000_c4s1_000001_00.jpg",
        "-1_c5s1_000001_00.jpg",
        "-1_c6s1_000001_00.jpg",
    ],
}


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate(root, num_ids=20, images_per_id=6, num_cameras=4, seed=1, workers=1)
    return root


def test_hand_made_folder_junk_and_distractors(tmp_path):
    root = _make(tmp_path / "Market-1501-v15.09.15", HAND_MADE)
    ds = load_dataset(root)
    assert ds.name == "market1501" and ds.num_cameras == 6  # detected from the folder name
    # train: pid 0 and -1 dropped; 0002 -> 0, 0007 -> 1; cameras 0-based
    assert [(Path(p).name, pid, cam) for p, pid, cam in ds.train] == [
        ("0002_c1s1_000451_03.jpg", 0, 0),
        ("0002_c2s1_000551_01.jpg", 0, 1),
        ("0007_c3s3_000101_00.jpg", 1, 2),
    ]
    assert ds.num_train_pids == 2
    assert [(it.pid, it.camid) for it in ds.query] == [(3, 0), (5, 1)]
    # gallery keeps the distractor (pid 0), drops junk (-1); original pids kept
    assert sorted((it.pid, it.camid) for it in ds.gallery) == [(0, 3), (3, 0), (3, 1), (5, 1)]
    assert ds.junk == {"train": 1, "query": 0, "gallery": 2}
    assert ds.distractors["gallery"] == 1 and ds.distractors["train"] == 1
    assert all(os.path.isabs(it.path) for it in ds.gallery)
    text = ds.summary()
    assert "subset" in text and "# ids" in text and "# images" in text and "# cameras" in text
    assert "gallery  |     3 |        4 |         3" in text
    stats = ds.stats()
    assert stats["gallery"]["images"] == 4 and stats["train"]["ids"] == 2


def test_unparseable_names_are_skipped_counted_and_warned(tmp_path):
    files = {k: list(v) for k, v in HAND_MADE.items()}
    files["bounding_box_train"] += ["foo.jpg", "x0002_c1.jpg", "0002_cX.jpg", "0009_c7s1_000001_00.jpg"]
    root = _make(tmp_path / "Market-1501", files)
    with pytest.warns(UserWarning, match="skipped 4 image file"):
        ds = load_dataset(root, name="market1501")  # c7 is out of range for Market (6 cameras)
    assert ds.skipped["train"] == 4 and len(ds.train) == 3
    assert "4 files skipped" in ds.summary()
    # As a generic dataset camera 7 is fine.
    with pytest.warns(UserWarning, match="skipped 3"):
        ds = load_dataset(root, name="generic")
    assert ds.num_cameras == 7 and ds.num_train_pids == 3


def test_root_or_parent_is_accepted(tmp_path):
    root = _make(tmp_path / "data" / "DukeMTMC-reID", HAND_MADE)
    assert find_root(tmp_path / "data") == root
    ds = load_dataset(tmp_path / "data")
    assert ds.root == str(root) and ds.name == "dukemtmcreid" and ds.num_cameras == 8
    assert DukeMTMCreID.load(root).name == "dukemtmcreid"
    assert Market1501.load(root).name == "market1501"
    assert ReIDFolderDataset.load(root).name == "generic"
    # Two datasets side by side: the name picks one, "auto" refuses to guess.
    _make(tmp_path / "data" / "Market-1501-v15.09.15", HAND_MADE)
    assert load_dataset(tmp_path / "data", name="market1501").root.endswith("Market-1501-v15.09.15")
    with pytest.raises(DataError, match="several datasets"):
        load_dataset(tmp_path / "data")


def test_missing_folder_errors_name_the_path(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "nowhere")
    root = _make(tmp_path / "ds", HAND_MADE)
    (root / "query").rename(root / "query_old")
    with pytest.raises(DataError, match=str(root / "query")):
        load_dataset(root)
    with pytest.raises(DataError, match="no dataset"):
        load_dataset(tmp_path / "ds" / "bounding_box_train")


def test_no_valid_query_is_an_error(tmp_path):
    files = dict(HAND_MADE)
    files["query"] = ["0003_c1s1_000100_00.jpg"]
    files["bounding_box_test"] = ["0003_c1s1_000300_00.jpg", "0004_c2s1_000300_00.jpg"]  # same camera only
    root = _make(tmp_path / "ds", files)
    with pytest.raises(DataError, match="no valid query"):
        load_dataset(root)


def test_generated_dataset(synth_root):
    ds = load_dataset(synth_root)
    assert ds.name == "generic" and ds.num_cameras == 4
    assert ds.num_train_pids == 10 and sorted({it.pid for it in ds.train}) == list(range(10))
    assert len(ds.train) == 60 and len({it.pid for it in ds.query}) == 10
    assert ds.junk["gallery"] > 0 and ds.distractors["gallery"] > 0
    assert sum(ds.skipped.values()) == 0


def test_image_dataset_items_and_transform(synth_root):
    ds = load_dataset(synth_root)
    data = ImageDataset(ds.query)
    img, pid, camid, index = data[3]
    assert isinstance(img, torch.Tensor) and img.shape == (3, 128, 64) and 0 <= img.min() <= img.max() <= 1
    assert (pid, camid, index) == (ds.query[3].pid, ds.query[3].camid, 3)
    assert len(data) == len(ds.query) and data.pids[3] == pid
    sized = ImageDataset(ds.query, transform=lambda im: np.asarray(im.resize((32, 64))))
    assert sized[0][0].shape == (64, 32, 3)


def test_truncated_or_missing_image_raises_naming_the_path(tmp_path):
    good = tmp_path / "0001_c1s1_000001_00.jpg"
    _jpg(good)
    bad = tmp_path / "0001_c2s1_000001_00.jpg"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    data = ImageDataset([(str(good), 0, 0), (str(bad), 0, 1), (str(tmp_path / "gone.jpg"), 1, 0)])
    assert data[0][0].shape == (3, 128, 64)
    with pytest.raises(DataError, match=str(bad)):
        data[1]
    with pytest.raises(DataError, match="gone.jpg"):
        data[2]
    text = tmp_path / "0001_c3s1_000001_00.jpg"
    text.write_text("not an image")
    with pytest.raises(DataError, match=str(text)):
        ImageDataset([(str(text), 0, 2)])[0]
