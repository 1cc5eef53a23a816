"""Training subsamples the priority rows (access + delayed) without concatenating them: same rows, same order."""

from __future__ import annotations

import numpy as np

from precache.models.optimizer.train import _subsample


def test_subsample_of_parts_equals_subsample_of_their_concatenation() -> None:
    gen = np.random.default_rng(0)
    access = gen.random((1000, 5), dtype=np.float32)
    delayed = gen.random((700, 5), dtype=np.float32)
    y = gen.random(1700)
    joined = np.concatenate([access, delayed])
    for max_rows in (50, 1699, 1700, 5000):
        rows, labels = _subsample([access, delayed], y, max_rows, np.random.default_rng(3))
        expected_rng = np.random.default_rng(3)
        if len(y) <= max_rows:
            want, want_y = joined, y
        else:
            idx = expected_rng.choice(len(y), size=max_rows, replace=False)
            want, want_y = joined[idx], y[idx]
        assert np.array_equal(rows, want) and np.array_equal(labels, want_y)
        assert rows.dtype == np.float32
