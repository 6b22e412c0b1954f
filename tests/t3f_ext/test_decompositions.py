"""TT-SVD, rounding and orthogonalization against NumPy SVDs of the
unfoldings (the Oseledets 2011 error bounds)."""

import numpy as np
import pytest
import tensorflow as tf

import t3f_ext as t3f
from tt_reference import MATRIX_MODES, TENSOR_MODES, make, run, tol

# XLA compiles each SVD for seconds, so the XLA run is a separate small test.
DTYPE_MODES = pytest.mark.parametrize(
    "dtype,mode",
    [(np.float32, "eager"), (np.float64, "eager"), (np.float64, "function")],
    ids=["float32-eager", "float64-eager", "float64-function"],
)


def unfolding_errors(dense, ranks):
    """Best rank-r_k approximation error of each unfolding k (NumPy SVD)."""
    errors = []
    modes = dense.shape
    for k in range(1, len(modes)):
        s = np.linalg.svd(dense.reshape(int(np.prod(modes[:k])), -1), compute_uv=False)
        errors.append(np.sqrt(np.sum(s[ranks[k] :] ** 2)))
    return np.array(errors)


def low_rank_plus_noise(rng, dtype, noise=1e-2):
    _, dense = make(rng, [(4,), (5,), (4,), (3,)], [1, 2, 3, 2, 1], np.float64)
    return (dense + noise * rng.standard_normal(dense.shape)).astype(dtype)


def test_to_tt_tensor_is_exact_without_truncation(dtype):
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((3, 4, 5, 2)).astype(dtype)
    tt = t3f.to_tt_tensor(dense, max_tt_rank=100)
    assert tt.get_tt_ranks().as_list() == [1, 3, 10, 2, 1]
    np.testing.assert_allclose(t3f.full(tt).numpy(), dense, **tol(dtype))


@DTYPE_MODES
def test_to_tt_tensor_max_rank_within_svd_bound(dtype, mode):
    rng = np.random.default_rng(1)
    dense = low_rank_plus_noise(rng, dtype)
    tt = run(mode, lambda x: t3f.to_tt_tensor(x, max_tt_rank=[1, 2, 3, 2, 1]), tf.constant(dense))
    assert tt.get_tt_ranks().as_list() == [1, 2, 3, 2, 1]
    error = np.linalg.norm(t3f.full(tt).numpy() - dense)
    bound = np.linalg.norm(unfolding_errors(dense.astype(np.float64), [1, 2, 3, 2, 1]))
    assert error <= bound * (1 + 1e-3) + 1e-5
    assert error >= np.max(unfolding_errors(dense.astype(np.float64), [1, 2, 3, 2, 1])) * (1 - 1e-3)


def test_to_tt_tensor_epsilon_bound():
    rng = np.random.default_rng(2)
    dense = low_rank_plus_noise(rng, np.float64, noise=1e-3)
    previous = None
    for epsilon in (1e-4, 1e-2, 0.3):
        tt = t3f.to_tt_tensor(dense, max_tt_rank=None, epsilon=epsilon)
        rel = np.linalg.norm(t3f.full(tt).numpy() - dense) / np.linalg.norm(dense)
        assert rel <= epsilon
        ranks = np.array(tt.get_tt_ranks().as_list())
        if previous is not None:
            assert np.all(ranks <= previous)
        previous = ranks
        if epsilon == 1e-2:  # the noise (1e-3 relative) is cut, the signal kept
            assert ranks.tolist() == [1, 2, 3, 2, 1]


def test_to_tt_matrix_exact_and_vector(dtype):
    rng = np.random.default_rng(3)
    mat = rng.standard_normal((12, 12)).astype(dtype)
    tt = t3f.to_tt_matrix(mat, ((2, 3, 2), (3, 2, 2)), max_tt_rank=1000)
    np.testing.assert_allclose(t3f.full(tt).numpy(), mat, **tol(dtype))
    assert [s.as_list() for s in tt.get_raw_shape()] == [[2, 3, 2], [3, 2, 2]]
    vec = rng.standard_normal((12, 1)).astype(dtype)
    tv = t3f.to_tt_matrix(vec, ((2, 3, 2), None))
    np.testing.assert_allclose(t3f.full(tv).numpy(), vec, **tol(dtype))
    # A Kronecker product has TT-ranks 1.
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((6, 4))
    kron = t3f.to_tt_matrix(np.kron(a, b).astype(dtype), ((2, 6), (3, 4)), max_tt_rank=1)
    np.testing.assert_allclose(t3f.full(kron).numpy(), np.kron(a, b), **tol(dtype))


@DTYPE_MODES
def test_round_max_rank_within_svd_bound(dtype, mode):
    rng = np.random.default_rng(4)
    dense = low_rank_plus_noise(rng, dtype)
    tt = t3f.to_tt_tensor(dense, max_tt_rank=100)
    rounded = run(mode, lambda x: t3f.round(x, max_tt_rank=[1, 2, 3, 2, 1]), tt)
    assert rounded.get_tt_ranks().as_list() == [1, 2, 3, 2, 1]
    error = np.linalg.norm(t3f.full(rounded).numpy() - dense)
    errors = unfolding_errors(dense.astype(np.float64), [1, 2, 3, 2, 1])
    assert error <= np.linalg.norm(errors) * (1 + 1e-3) + 1e-4
    assert error >= np.max(errors) * (1 - 1e-3)


def test_tt_svd_and_round_under_xla():
    rng = np.random.default_rng(8)
    dense = rng.standard_normal((6, 8)).astype(np.float32)

    @tf.function(jit_compile=True)
    def compress(x):
        tt = t3f.to_tt_tensor(x, max_tt_rank=3)
        return tt, t3f.round(tt + tt, max_tt_rank=2)

    tt, rounded = compress(tf.constant(dense))
    s = np.linalg.svd(dense.astype(np.float64), compute_uv=False)
    np.testing.assert_allclose(
        np.linalg.norm(t3f.full(tt).numpy() - dense), np.sqrt(np.sum(s[3:] ** 2)), rtol=1e-3
    )
    np.testing.assert_allclose(
        np.linalg.norm(t3f.full(rounded).numpy() - 2 * dense),
        2 * np.sqrt(np.sum(s[2:] ** 2)),
        rtol=1e-3,
    )


def test_round_recovers_exact_low_rank_and_batches(dtype):
    rng = np.random.default_rng(5)
    a, dense_a = make(rng, MATRIX_MODES, [1, 2, 2, 1], dtype)
    redundant = a + a + a  # ranks 6, value 3 a
    exact = t3f.round(redundant, max_tt_rank=2)
    assert exact.get_tt_ranks().as_list() == [1, 2, 2, 1]
    np.testing.assert_allclose(
        t3f.full(exact).numpy(),
        3 * dense_a,
        rtol=1e-3 if dtype == np.float32 else 1e-9,
        atol=1e-3 if dtype == np.float32 else 1e-9,
    )
    batch, dense_batch = make(rng, TENSOR_MODES, [1, 2, 2, 1], dtype, batch=3)
    doubled = t3f.round(batch + batch, max_tt_rank=2)
    assert doubled.batch_size == 3
    assert doubled.get_tt_ranks().as_list() == [1, 2, 2, 1]
    np.testing.assert_allclose(
        t3f.full(doubled).numpy(),
        2 * dense_batch,
        rtol=1e-3 if dtype == np.float32 else 1e-9,
        atol=1e-3 if dtype == np.float32 else 1e-9,
    )
    # No cap, no epsilon: exact, ranks only bounded by the mode sizes.
    full_rank = t3f.round(batch + batch)
    assert full_rank.get_tt_ranks().as_list() == [1, 3, 2, 1]


@pytest.mark.parametrize("epsilon", [0.2, 1e-3])
def test_round_epsilon_bound_per_batch_element(epsilon):
    rng = np.random.default_rng(6)
    denses = np.stack([low_rank_plus_noise(rng, np.float64, 1e-2) for _ in range(2)])
    batch = t3f.TensorTrainBatch(
        [
            tf.stack(cores)
            for cores in zip(*[t3f.to_tt_tensor(d, max_tt_rank=100).tt_cores for d in denses])
        ]
    )
    rounded = t3f.round(batch, epsilon=epsilon)
    errors = np.linalg.norm((t3f.full(rounded).numpy() - denses).reshape(2, -1), axis=1)
    assert np.all(errors <= epsilon * np.linalg.norm(denses.reshape(2, -1), axis=1))
    assert max(rounded.get_tt_ranks().as_list()) < 20


@pytest.mark.parametrize("left_to_right", [True, False])
def test_orthogonalize(dtype, left_to_right):
    rng = np.random.default_rng(7)
    for tt, dense in (
        make(rng, TENSOR_MODES, [1, 2, 3, 1], dtype),
        make(rng, MATRIX_MODES, [1, 3, 4, 1], dtype),
        make(rng, TENSOR_MODES, [1, 3, 2, 1], dtype, batch=2),
    ):
        ortho = t3f.orthogonalize_tt_cores(tt, left_to_right=left_to_right)
        np.testing.assert_allclose(t3f.full(ortho).numpy(), dense, **tol(dtype))
        nb = int(isinstance(tt, t3f.TensorTrainBatch))
        cores = [c.numpy() for c in ortho.tt_cores]
        checked = cores[:-1] if left_to_right else cores[1:]
        for core in checked:
            if nb:
                core = core[0]
            if left_to_right:
                mat = core.reshape(-1, core.shape[-1])
            else:
                mat = core.reshape(core.shape[0], -1).T
            np.testing.assert_allclose(mat.T @ mat, np.eye(mat.shape[1]), **tol(dtype))
    # Ranks shrink to what the modes allow: [1, 3, 4, 1] -> [1, 3, 4, 1] for
    # TT-matrices with 6 x 6 x 4 merged modes; a 3 x 4 x 2 tensor of ranks
    # [1, 4, 4, 1] becomes [1, 3, 2, 1] after the QR sweeps.
    wide, dense = make(rng, TENSOR_MODES, [1, 4, 4, 1], dtype)
    ortho = t3f.orthogonalize_tt_cores(wide, left_to_right=left_to_right)
    expected = [1, 3, 4, 1] if left_to_right else [1, 4, 2, 1]
    assert ortho.get_tt_ranks().as_list() == expected
    np.testing.assert_allclose(t3f.full(ortho).numpy(), dense, **tol(dtype))


def test_decomposition_errors():
    dense = np.ones((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="max_tt_rank must be a positive int"):
        t3f.to_tt_tensor(dense, max_tt_rank=0)
    with pytest.raises(ValueError, match="max_tt_rank as a list must have 4"):
        t3f.to_tt_tensor(dense, max_tt_rank=[1, 2, 1])
    with pytest.raises(ValueError, match="epsilon: expected None or a finite non-negative"):
        t3f.to_tt_tensor(dense, epsilon=-0.1)
    with pytest.raises(TypeError, match="tens must have a floating"):
        t3f.to_tt_tensor(np.ones((2, 3), np.int32))
    with pytest.raises(
        ValueError,
        match=r"describes a 6 x 4 matrix but mat has "
        r"shape \(4, 6\)",
    ):
        t3f.to_tt_matrix(np.ones((4, 6)), ((2, 3), (2, 2)))
    with pytest.raises(ValueError, match="two lists of equal length"):
        t3f.to_tt_matrix(np.ones((4, 6)), ((2, 2), (6,)))
    with pytest.raises(ValueError, match="needs eager execution"):
        tf.function(lambda x: t3f.round(x, epsilon=0.1).tt_cores)(t3f.to_tt_tensor(dense))
    with pytest.raises(TypeError, match="tt must be a TensorTrain"):
        t3f.round(dense, max_tt_rank=2)
