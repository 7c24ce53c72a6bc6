"""The dataset plan: which image goes to which subset and camera, and its Market-1501 name."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import streams

SUBSETS = ("bounding_box_train", "query", "bounding_box_test")


@dataclass(frozen=True)
class ImageTask:
    """One image to render and write."""

    subset: str  # bounding_box_train | query | bounding_box_test
    kind: str  # id | distractor | junk
    number: int  # pid (id) or running index (distractor, junk)
    image: int  # image index within the identity
    cam: int  # 0-based


def plan_tasks(
    seed: int,
    num_ids: int,
    num_train: int,
    num_cameras: int,
    images_per_id: int,
    num_distractors: int,
    num_junk: int,
) -> tuple[list[ImageTask], list[int], list[int]]:
    """Every image of the dataset, with the train and test ids (disjoint, sorted).

    Each identity appears in 2 or more cameras; a test identity has one query per camera
    and at least one gallery image in each. Distractors and junk go to the gallery.
    """
    split_rng = np.random.default_rng([seed, streams.SPLIT])
    pids = split_rng.permutation(np.arange(1, num_ids + 1))
    train_ids = sorted(int(p) for p in pids[:num_train])
    test_ids = sorted(int(p) for p in pids[num_train:])
    tasks: list[ImageTask] = []
    test_set = set(test_ids)
    for pid in train_ids + test_ids:
        id_rng = np.random.default_rng([seed, streams.SPLIT, pid])
        is_test = pid in test_set
        per_cam_min = 2 if is_test else 1  # a test camera holds a query and >= 1 gallery image
        max_cams = min(num_cameras, images_per_id // per_cam_min)
        num_cams = int(id_rng.integers(2, max_cams + 1))
        cams = sorted(int(c) for c in id_rng.choice(num_cameras, num_cams, replace=False))
        counts = per_cam_min + id_rng.multinomial(
            images_per_id - per_cam_min * num_cams, np.full(num_cams, 1.0 / num_cams)
        )
        image_index = 0
        for cam, count in zip(cams, counts):
            for j in range(int(count)):
                if not is_test:
                    subset = "bounding_box_train"
                else:
                    subset = "query" if j == 0 else "bounding_box_test"  # one query per camera
                tasks.append(ImageTask(subset, "id", pid, image_index, cam))
                image_index += 1
    extras_rng = np.random.default_rng([seed, streams.SPLIT, 0])  # id 0 is never a person
    for i in range(num_distractors):
        tasks.append(ImageTask("bounding_box_test", "distractor", i, 0, int(extras_rng.integers(num_cameras))))
    for i in range(num_junk):
        tasks.append(ImageTask("bounding_box_test", "junk", i, 0, int(extras_rng.integers(num_cameras))))
    return tasks, train_ids, test_ids


def file_name(seed: int, task: ImageTask) -> str:
    """The Market-1501 name of a task's image: {pid}_c{cam}s{sequence}_{frame}_{box}.jpg."""
    kind_index = {"id": 0, "distractor": 1, "junk": 2}[task.kind]
    rng = np.random.default_rng([seed, streams.NAME, kind_index, task.number, task.image])
    pid = {"id": task.number, "distractor": 0, "junk": -1}[task.kind]
    slot = task.image if task.kind == "id" else task.number
    frame = 40 * slot + int(rng.integers(40))  # unique per (pid, file): the slot is in it
    pid_s = "-1" if pid < 0 else f"{pid:04d}"  # Market writes junk as -1_c...
    return f"{pid_s}_c{task.cam + 1}s{int(rng.integers(1, 7))}_{frame:06d}_{int(rng.integers(0, 4)):02d}.jpg"
