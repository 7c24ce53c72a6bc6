"""PK sampler: batch composition, replacement, determinism, errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from reid_core.config import DataConfig
from reid_core.data.sampler import PKSampler
from reid_core.errors import DataError


def _pids(counts: dict[int, int]) -> list[int]:
    out = [pid for pid, n in counts.items() for _ in range(n)]
    np.random.default_rng(0).shuffle(out)  # dataset order must not matter
    return out


def test_every_batch_is_p_ids_times_k_images():
    pids = _pids({i: 3 + i % 7 for i in range(21)})
    s = PKSampler(pids, p=4, k=3, seed=1)
    idx = list(s)
    assert len(idx) == len(s) and len(idx) % s.batch_size == 0
    chunks = sum((3 + i % 7) // 3 for i in range(21))
    # an epoch covers the images about once: every chunk of K but those left when < P ids remain
    assert chunks * 3 - 3 * 3 * 4 <= len(idx) <= chunks * 3
    for b in range(0, len(idx), s.batch_size):
        batch = idx[b : b + s.batch_size]
        per_id = Counter(pids[i] for i in batch)
        assert len(per_id) == 4 and set(per_id.values()) == {3}
        for j in range(4):  # K images of one identity come in a row
            assert len({pids[i] for i in batch[j * 3 : (j + 1) * 3]}) == 1
    # no image is used twice in an epoch when every identity has >= K images
    assert len(set(idx)) == len(idx)


def test_identities_with_fewer_than_k_images_use_replacement():
    pids = _pids({0: 1, 1: 2, 2: 5, 3: 5})
    s = PKSampler(pids, p=4, k=4, seed=0)
    idx = list(s)
    assert len(idx) == 16
    per_id = Counter(pids[i] for i in idx)
    assert per_id == {0: 4, 1: 4, 2: 4, 3: 4}  # ids 2 and 3 have one chunk of 4 each
    only = [i for i in idx if pids[i] == 0]
    assert len(set(only)) == 1


def test_deterministic_per_seed_and_epoch_and_resumable():
    pids = _pids({i: 6 for i in range(30)})
    a, b = PKSampler(pids, 8, 4, seed=3), PKSampler(pids, 8, 4, seed=3)
    assert list(a) == list(b)
    epoch0 = list(a)
    a.set_epoch(1)
    assert list(a) != epoch0
    assert list(PKSampler(pids, 8, 4, seed=4)) != epoch0
    # A trainer resumed at epoch 5 gets the same batches as one that ran through.
    run = PKSampler(pids, 8, 4, seed=3)
    for e in range(6):
        run.set_epoch(e)
        last = list(run)
    resumed = PKSampler(pids, 8, 4, seed=3)
    resumed.load_state_dict({"seed": 3, "epoch": 5})
    assert list(resumed) == last and resumed.state_dict() == {"seed": 3, "epoch": 5}


def test_too_few_identities_is_a_clear_error():
    with pytest.raises(DataError, match=r"P=8.*K=4.*only 5 identities"):
        PKSampler(_pids({i: 4 for i in range(5)}), p=8, k=4)


def test_defaults_from_config_and_items():
    items = [(f"/x/{i}.jpg", i // 5, i % 3) for i in range(60)]  # 12 ids x 5
    s = PKSampler(items)
    cfg = DataConfig()
    assert (s.p, s.k) == (cfg.p, cfg.k) and len(s) == 8 * 4  # 12 ids x 1 chunk: one batch of 8 ids
    assert PKSampler.from_config([it[1] for it in items], DataConfig(p=3, k=2)).batch_size == 6


class _Ids(Dataset):
    def __init__(self, pids):
        self.pids = pids

    def __len__(self):
        return len(self.pids)

    def __getitem__(self, i):
        return torch.tensor([i]), self.pids[i]


def test_works_with_dataloader_workers():
    pids = _pids({i: 4 for i in range(10)})
    s = PKSampler(pids, p=2, k=4, seed=0)
    s.set_epoch(2)
    dl = DataLoader(_Ids(pids), batch_size=s.batch_size, sampler=s, num_workers=2)
    batches = [x.flatten().tolist() for x, _ in dl]
    assert [i for b in batches for i in b] == list(s)
    assert all(len(b) == 8 for b in batches)
