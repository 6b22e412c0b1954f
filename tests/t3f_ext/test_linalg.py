"""t3f_ext.linalg.svd: the XLA route (QR + Jordan-Wielandt eigh) against NumPy's LAPACK SVD."""

import numpy as np
import pytest
import tensorflow as tf

from t3f_ext import linalg
from tf_modes import MODES, run_in_mode

TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12, np.complex128: 1e-12}
XLA_FLOAT64_TOLERANCE = 2e-6
"""XLA's Jacobi eigh (and its SVD) stop at ~1e-7 relative residual in float64."""


def _matrix(shape, dtype, singular_values=None, seed=0):
    """A random ``shape`` matrix; with ``singular_values`` given, those are its spectrum."""
    rng = np.random.default_rng(seed)
    m, n = shape[-2:]
    a = rng.normal(size=shape)
    if np.issubdtype(dtype, np.complexfloating):
        a = a + 1j * rng.normal(size=shape)
    if singular_values is not None:
        u, _, vh = np.linalg.svd(a, full_matrices=False)
        a = (u * singular_values) @ vh
    return a.astype(dtype)


def _check(matrix, s, u, v, mode):
    dtype = matrix.dtype.type
    tol = TOLERANCE[dtype]
    if mode == "jit" and dtype != np.float32:
        tol = XLA_FLOAT64_TOLERANCE
    k = min(matrix.shape[-2:])
    norm = np.linalg.norm(matrix, ord=2, axis=(-2, -1))[..., None]
    np.testing.assert_allclose(s / norm, np.linalg.svd(matrix, compute_uv=False) / norm, atol=tol)
    reconstruction = (u * s[..., None, :].astype(u.dtype)) @ np.conj(np.swapaxes(v, -1, -2))
    np.testing.assert_allclose(reconstruction, matrix, atol=tol * norm.max())
    eye = np.eye(k)
    np.testing.assert_allclose(
        np.conj(np.swapaxes(u, -1, -2)) @ u,
        np.broadcast_to(eye, u.shape[:-2] + eye.shape),
        atol=tol,
    )
    np.testing.assert_allclose(
        np.conj(np.swapaxes(v, -1, -2)) @ v,
        np.broadcast_to(eye, v.shape[:-2] + eye.shape),
        atol=tol,
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "shape", [(30, 7), (7, 30), (12, 12), (3, 20, 6)], ids=["tall", "wide", "square", "batched"]
)
def test_svd_by_eigh_matches_lapack(shape, dtype, mode):
    matrix = _matrix(shape, dtype)
    s, u, v = (t.numpy() for t in run_in_mode(linalg.svd_by_eigh, mode, tf.constant(matrix)))
    _check(matrix, s, u, v, mode)


@pytest.mark.parametrize("mode", MODES)
def test_svd_by_eigh_complex(mode):
    matrix = _matrix((9, 5), np.complex128)
    s, u, v = (t.numpy() for t in run_in_mode(linalg.svd_by_eigh, mode, tf.constant(matrix)))
    _check(matrix, s, u, v, mode)


@pytest.mark.parametrize("mode", MODES)
def test_rank_deficient_and_graded_spectra_keep_orthonormal_vectors(dtype, mode):
    """Zero singular values mix the +-sigma eigenpairs; the vectors must stay orthonormal and
    the small singular values accurate to eps * ||M|| (not sqrt(eps), as a Gram matrix gives)."""
    zero_tail = np.array([5.0, 3.0, 1.0, 0.0, 0.0, 0.0])
    graded = 10.0 ** -np.arange(6.0)
    for spectrum in (zero_tail, graded):
        matrix = _matrix((15, 6), dtype, spectrum)
        s, u, v = (t.numpy() for t in run_in_mode(linalg.svd_by_eigh, mode, tf.constant(matrix)))
        _check(matrix, s, u, v, mode)
    # graded: sigma_4 = 1e-3 is resolved to ~eps; a Gram matrix in float32 would be off by ~6e-5.
    np.testing.assert_allclose(s[3], 1e-3, atol=50 * np.finfo(dtype).eps)


def test_svd_takes_the_eigh_route_only_under_xla():
    matrix = tf.constant(_matrix((8, 5), np.float64))
    routes = []

    def record(m):
        routes.append(linalg.in_xla_context())
        return linalg.svd(m)

    for mode in MODES:
        run_in_mode(record, mode, matrix)
    assert routes == [False, False, True]
    nested = tf.function(lambda m: tf.function(record)(m), jit_compile=True)
    nested(matrix)
    assert routes[-1] is True


def test_shapes_it_cannot_take_are_named():
    with pytest.raises(
        ValueError,
        match="matrix: expected a \\[..., m, n\\] tensor with static m and n, got shape \\(5,\\)",
    ):
        linalg.svd_by_eigh(tf.zeros([5]))
    dynamic = tf.function(
        linalg.svd_by_eigh, input_signature=[tf.TensorSpec([None, 3], tf.float64)]
    )
    with pytest.raises(ValueError, match="static m and n, got shape \\(None, 3\\)"):
        dynamic.get_concrete_function()
