"""t3f_ext.approximate: sums with rounding, against dense NumPy sums."""

import numpy as np
import pytest

import t3f_ext as t3f
from tt_reference import MATRIX_MODES, TENSOR_MODES, make, tol


def test_add_n_exact_when_ranks_allow(dtype):
    rng = np.random.default_rng(0)
    items = [make(rng, TENSOR_MODES, [1, 2, 2, 1], dtype) for _ in range(5)]
    total = t3f.approximate.add_n([tt for tt, _ in items], max_tt_rank=8)
    np.testing.assert_allclose(
        t3f.full(total).numpy(), sum(dense for _, dense in items), **tol(dtype)
    )
    assert max(total.get_tt_ranks().as_list()) <= 8


def test_add_n_truncates_to_max_rank_with_small_error():
    rng = np.random.default_rng(1)
    base, dense = make(rng, MATRIX_MODES, [1, 2, 2, 1], np.float64)
    noise = [make(rng, MATRIX_MODES, [1, 2, 2, 1], np.float64) for _ in range(3)]
    items = [base] + [1e-4 * tt for tt, _ in noise]
    total = t3f.approximate.add_n(items, max_tt_rank=2)
    assert total.get_tt_ranks().as_list() == [1, 2, 2, 1]
    exact = dense + 1e-4 * sum(d for _, d in noise)
    # The noise is 1e-4 relative; the rank-2 answer is within that of exact.
    rel = np.linalg.norm(t3f.full(total).numpy() - exact) / np.linalg.norm(exact)
    assert rel < 1e-3


def test_reduce_sum_batch_plain_and_weighted(dtype):
    rng = np.random.default_rng(2)
    batch, dense = make(rng, TENSOR_MODES, [1, 2, 2, 1], dtype, batch=5)
    total = t3f.approximate.reduce_sum_batch(batch, max_tt_rank=20)
    assert isinstance(total, t3f.TensorTrain)
    np.testing.assert_allclose(t3f.full(total).numpy(), dense.sum(0), **tol(dtype))
    coef = rng.standard_normal(5).astype(dtype)
    weighted = t3f.approximate.reduce_sum_batch(batch, 20, coef=coef)
    np.testing.assert_allclose(
        t3f.full(weighted).numpy(), np.einsum("b,bxyz->xyz", coef, dense), **tol(dtype)
    )
    coef2 = rng.standard_normal((5, 3)).astype(dtype)
    several = t3f.approximate.reduce_sum_batch(batch, 20, coef=coef2)
    assert isinstance(several, t3f.TensorTrainBatch) and several.batch_size == 3
    np.testing.assert_allclose(
        t3f.full(several).numpy(), np.einsum("bj,bxyz->jxyz", coef2, dense), **tol(dtype)
    )


def test_approximate_errors():
    rng = np.random.default_rng(3)
    batch, _ = make(rng, TENSOR_MODES, [1, 2, 2, 1], np.float32, batch=3)
    with pytest.raises(ValueError, match=r"coef must have shape \[3\] or \[3, N\]"):
        t3f.approximate.reduce_sum_batch(batch, 4, coef=np.ones(4))
    with pytest.raises(TypeError, match="tt_batch must be a TensorTrainBatch"):
        t3f.approximate.reduce_sum_batch(batch[0], 4)
    with pytest.raises(TypeError, match="non-empty list"):
        t3f.approximate.add_n([], 4)
    with pytest.raises(ValueError, match="max_tt_rank must be a positive int"):
        t3f.approximate.add_n([batch[0], batch[1]], max_tt_rank=-2)
