"""t3f_ext.kronecker against NumPy on the dense Kronecker product."""

import numpy as np
import pytest
import tensorflow as tf

import t3f_ext as t3f
from tt_reference import make, tol

MODES = [(2, 2), (3, 3), (2, 2)]


def spd_kron(rng, dtype, batch=None):
    """A TT-matrix with ranks 1 and symmetric positive-definite factors."""
    lead = [] if batch is None else [batch]
    cores = []
    for n, _ in MODES:
        g = rng.standard_normal(lead + [n, n])
        spd = g @ np.swapaxes(g, -1, -2) + n * np.eye(n)
        cores.append(spd[..., None, :, :, None].astype(dtype))
    if batch is None:
        tt = t3f.TensorTrain(cores)
    else:
        tt = t3f.TensorTrainBatch(cores)
    return tt, t3f.full(tt).numpy().astype(np.float64)


def test_determinants_and_inverse(dtype):
    rng = np.random.default_rng(0)
    kron, dense = make(rng, MODES, [1, 1, 1, 1], dtype)
    dense = dense.astype(np.float64)
    rel = 1e-3 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(
        t3f.kronecker.determinant(kron).numpy(), np.linalg.det(dense), rtol=rel
    )
    sign, logdet = t3f.kronecker.slog_determinant(kron)
    ref_sign, ref_logdet = np.linalg.slogdet(dense)
    assert sign.numpy() == ref_sign
    np.testing.assert_allclose(logdet.numpy(), ref_logdet, rtol=rel, atol=rel)
    inv = t3f.kronecker.inv(kron)
    assert inv.get_tt_ranks().as_list() == [1, 1, 1, 1]
    np.testing.assert_allclose(
        t3f.full(inv).numpy() @ dense, np.eye(12), atol=1e-3 if dtype == np.float32 else 1e-9
    )
    # A negative determinant: flip the sign of one factor with odd exponent.
    # det(A) = prod det(G_k)^(N / n_k) with N / n_k = 6, 4, 6: always even
    # here, so the sign is +1 whatever the factors.
    assert np.linalg.det(dense) > 0


def test_batch_and_odd_exponent_sign(dtype):
    rng = np.random.default_rng(1)
    # Modes (3,), (1,): N / n_1 = 1 is odd, so a negative factor flips det.
    cores = [rng.standard_normal((2, 1, 3, 3, 1)).astype(dtype), -np.ones((2, 1, 1, 1, 1), dtype)]
    kron = t3f.TensorTrainBatch(cores)
    dense = t3f.full(kron).numpy().astype(np.float64)
    rel = 1e-3 if dtype == np.float32 else 1e-9
    sign, logdet = tf.function(t3f.kronecker.slog_determinant)(kron)
    ref_sign, ref_logdet = np.linalg.slogdet(dense)
    np.testing.assert_array_equal(sign.numpy(), ref_sign)
    np.testing.assert_allclose(logdet.numpy(), ref_logdet, rtol=rel, atol=rel)
    np.testing.assert_allclose(
        t3f.kronecker.determinant(kron).numpy(), np.linalg.det(dense), rtol=rel
    )
    inv = tf.function(lambda k: t3f.full(t3f.kronecker.inv(k)), jit_compile=True)(kron)
    np.testing.assert_allclose(inv.numpy(), np.linalg.inv(dense), rtol=rel, atol=rel)


def test_cholesky(dtype):
    rng = np.random.default_rng(2)
    for batch in (None, 2):
        kron, dense = spd_kron(rng, dtype, batch)
        chol = tf.function(lambda k: t3f.full(t3f.kronecker.cholesky(k)), jit_compile=True)(
            kron
        ).numpy()
        np.testing.assert_allclose(chol, np.linalg.cholesky(dense), **tol(dtype))


def test_kronecker_errors():
    rng = np.random.default_rng(3)
    ranked, _ = make(rng, MODES, [1, 2, 1, 1], np.float32)
    with pytest.raises(
        ValueError,
        match=r"all TT-ranks 1; got TT-ranks "
        r"\[1, 2, 1, 1\]",
    ):
        t3f.kronecker.determinant(ranked)
    rect, _ = make(rng, [(2, 3), (3, 3)], [1, 1, 1], np.float32)
    with pytest.raises(ValueError, match="square factors"):
        t3f.kronecker.inv(rect)
    tensor, _ = make(rng, [(2,), (3,)], [1, 1, 1], np.float32)
    with pytest.raises(ValueError, match="must be a TT-matrix"):
        t3f.kronecker.cholesky(tensor)
