from __future__ import annotations

import numpy as np
import pytest
import torch

from archsearch.data import from_arrays, from_torch_dataset, load_splits
from archsearch.errors import ConfigError, DataError
from conftest import synthetic_images


def test_digits_splits_are_seeded_disjoint_and_normalised():
    a = load_splits({"name": "digits"}, seed=0)
    b = load_splits({"name": "digits", "valid_fraction": 0.2}, seed=0)
    c = load_splits({"name": "digits"}, seed=1)
    assert len(a.train) + len(a.valid) + len(a.test) == 1797
    assert len(a.test) == round(1797 * 0.2) and len(a.valid) == round(1797 * 0.2)
    assert a.task.input_shape == (1, 8, 8) and a.num_classes == 10
    assert torch.equal(a.test.x, b.test.x)
    assert not torch.equal(a.test.y, c.test.y)
    assert abs(float(a.train.x.mean())) < 1e-4 and abs(float(a.train.x.std()) - 1) < 1e-2
    rows = {tuple(r.tolist()) for r in torch.cat([a.train.x, a.valid.x, a.test.x]).flatten(1)}
    assert len(rows) > 1780  # (digits has a handful of duplicate images)


def test_from_arrays_accepts_nhw_and_checks_everything():
    x, y = synthetic_images(60)
    s = from_arrays(x[:, 0], y, seed=0)
    assert s.train.x.shape[1:] == (1, 8, 8) and s.num_classes == 3
    with pytest.raises(DataError, match="NaN"):
        from_arrays(np.full((10, 1, 4, 4), np.nan), np.arange(10) % 2)
    with pytest.raises(DataError, match="10 images but 9 labels"):
        from_arrays(np.zeros((10, 1, 4, 4)), np.arange(9) % 2)
    with pytest.raises(DataError, match="out of range for 2 classes"):
        from_arrays(np.zeros((10, 1, 4, 4)), np.arange(10) % 3, num_classes=2)
    with pytest.raises(DataError, match="labels must be integers"):
        from_arrays(np.zeros((10, 1, 4, 4)), np.linspace(0, 1, 10))
    with pytest.raises(DataError, match="at least 2 classes"):
        from_arrays(np.zeros((10, 1, 4, 4)), np.zeros(10, dtype=int))
    with pytest.raises(DataError, match=r"shape \(N, C, H, W\)"):
        from_arrays(np.zeros((10, 4)), np.arange(10) % 2)


def test_explicit_test_set_and_torch_datasets():
    x, y = synthetic_images(80)
    xt, yt = synthetic_images(20, seed=1)
    s = from_arrays(x, y, xt, yt, valid_fraction=0.25)
    assert len(s.test) == 20 and len(s.valid) == 20 and len(s.train) == 60
    ds = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    s2 = from_torch_dataset(ds, seed=0)
    assert len(s2.train) + len(s2.valid) + len(s2.test) == 80


def test_dataset_options_are_checked():
    with pytest.raises(ConfigError, match="needs a path"):
        load_splits({"name": "cifar10"})
    with pytest.raises(ConfigError, match="below 1"):
        load_splits({"name": "digits", "valid_fraction": 0.6, "test_fraction": 0.5})
