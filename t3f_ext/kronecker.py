"""Kronecker-product matrices: TT-matrices whose TT-ranks are all 1.

A TT-matrix with cores ``G_k`` of shape ``[1, n_k, n_k, 1]`` is the Kronecker
product ``A = G_1 (x) G_2 (x) ... (x) G_d`` of ``N = prod_k n_k`` rows, so
(Van Loan 2000):

* ``det(A) = prod_k det(G_k)^(N / n_k)``;
* ``inv(A) = inv(G_1) (x) ... (x) inv(G_d)``;
* ``cholesky(A) = cholesky(G_1) (x) ... (x) cholesky(G_d)``.

Each costs O(sum_k n_k^3) instead of O(N^3). All functions accept a
`TensorTrain` or a `TensorTrainBatch`. `inv` and `cholesky` compile with XLA;
`determinant` and `slog_determinant` run eagerly and in `tf.function` but not
under ``jit_compile`` (TF 2.21 has no XLA kernel for the determinant / LU
ops).
"""

import tensorflow as tf

from t3f_ext import utils


def _square_factors(kron_a, arg_name="kron_a"):
    """The ``[..., n_k, n_k]`` factors, after checking ranks 1 and squareness."""
    utils.check_tt(kron_a, arg_name, matrix=True)
    ranks = kron_a.get_tt_ranks().as_list()
    if any(r != 1 for r in ranks):
        raise ValueError(
            "%s must be a Kronecker product, i.e. a TT-matrix with "
            "all TT-ranks 1; got TT-ranks %s" % (arg_name, ranks)
        )
    rows, cols = [s.as_list() for s in kron_a.get_raw_shape()]
    if rows != cols:
        raise ValueError(
            "%s must have square factors (m_k == n_k); got raw shape "
            "%s x %s" % (arg_name, rows, cols)
        )
    return [core[..., 0, :, :, 0] for core in kron_a.tt_cores], rows


def _from_factors(factors, like):
    return utils.wrap(
        [f[..., tf.newaxis, :, :, tf.newaxis] for f in factors], utils.batch_dims(like)
    )


def _exponents(modes):
    total = 1
    for n in modes:
        total *= n
    return [total // n for n in modes]


def determinant(kron_a, name="t3f_kronecker_determinant"):
    """``det(A)`` of a Kronecker-product TT-matrix; scalar or ``[B]``.

    Cost: O(sum_k n_k^3). May overflow for large N; see `slog_determinant`.
    """
    factors, modes = _square_factors(kron_a)
    with tf.name_scope(name):
        det = 1.0
        for factor, power in zip(factors, _exponents(modes)):
            det *= tf.pow(tf.linalg.det(factor), power)
        return det


def slog_determinant(kron_a, name="t3f_kronecker_slog_determinant"):
    """``(sign, log|det A|)`` of a Kronecker-product TT-matrix.

    ``log|det A| = sum_k (N / n_k) log|det G_k|`` and
    ``sign = prod_k sign(det G_k)^(N / n_k)``. Cost: O(sum_k n_k^3).
    """
    factors, modes = _square_factors(kron_a)
    with tf.name_scope(name):
        sign, logdet = 1.0, 0.0
        for factor, power in zip(factors, _exponents(modes)):
            factor_sign, factor_logdet = tf.linalg.slogdet(factor)
            sign *= tf.pow(factor_sign, power)
            logdet += power * factor_logdet
        return sign, logdet


def inv(kron_a, name="t3f_kronecker_inv"):
    """``inv(A)`` as a Kronecker-product TT-matrix. Cost: O(sum_k n_k^3)."""
    factors, _ = _square_factors(kron_a)
    with tf.name_scope(name):
        return _from_factors([tf.linalg.inv(f) for f in factors], kron_a)


def cholesky(kron_a, name="t3f_kronecker_cholesky"):
    """The lower Cholesky factor of a symmetric positive-definite Kronecker
    product, as a Kronecker-product TT-matrix. Cost: O(sum_k n_k^3)."""
    factors, _ = _square_factors(kron_a)
    with tf.name_scope(name):
        return _from_factors([tf.linalg.cholesky(f) for f in factors], kron_a)
