"""T3F user code, ported from T3F 1.2.0's docs, runs on t3f_ext unchanged
except for the import (``import t3f_ext as t3f``), and reaches the outcomes
the docs show.

* docs/quick_start.ipynb: TT-SVD, arithmetic, rounding, TT-matrices, matvec;
* docs/tutorials/riemannian.ipynb: Riemannian gradient descent for the best
  rank-2 approximation of a rank-16 tensor, against TT-round;
* docs/tutorials/tensor_completion.ipynb: recovering a rank-5 tensor from 25%
  of its noisy entries, here by Riemannian gradient descent with
  ``t3f.gradients`` of the ``gather_nd`` loss.

Reference values come from NumPy on the dense tensors.
"""

import numpy as np
import tensorflow as tf

import t3f_ext as t3f


def test_quick_start():
    np.random.seed(0)
    tf.random.set_seed(0)
    # Converting to and from TT-format.
    a_dense = np.random.randn(3, 4)
    a_tt = t3f.to_tt_tensor(a_dense, max_tt_rank=3)
    assert [c.shape.as_list() for c in a_tt.tt_cores] == [[1, 3, 3], [3, 4, 1]]
    reconstructed_matrix = t3f.full(a_tt)
    np.testing.assert_allclose(reconstructed_matrix, a_dense, atol=1e-12)

    a_dense = np.random.randn(3, 2, 2).astype(np.float32)
    a_tt = t3f.to_tt_tensor(a_dense, max_tt_rank=3)
    reconstructed_tensor = t3f.full(a_tt)
    assert np.linalg.norm(reconstructed_tensor - a_dense) < 1e-5

    # Arithmetic operations.
    b_tt = t3f.random_tensor((3, 2, 2), tt_rank=2)
    norm = t3f.frobenius_norm(b_tt)
    b_dense = t3f.full(b_tt).numpy()
    np.testing.assert_allclose(norm, np.sqrt(np.sum(b_dense**2) + 1e-5), rtol=1e-5)
    sum_tt = a_tt + b_tt
    prod_tt = a_tt * b_tt
    twice_a_tt = 2 * a_tt
    np.testing.assert_allclose(t3f.full(sum_tt), a_dense + b_dense, atol=1e-5)
    np.testing.assert_allclose(t3f.full(prod_tt), a_dense * b_dense, atol=1e-5)
    np.testing.assert_allclose(t3f.full(twice_a_tt), 2 * a_dense, atol=1e-5)
    rounded_prod_tt = t3f.round(prod_tt, max_tt_rank=3)
    a_max_tt_rank = np.max(a_tt.get_tt_ranks())
    b_max_tt_rank = np.max(b_tt.get_tt_ranks())
    exact_prod_max_tt_rank = np.max(prod_tt.get_tt_ranks())
    rounded_prod_max_tt_rank = np.max(rounded_prod_tt.get_tt_ranks())
    assert (a_max_tt_rank, b_max_tt_rank, exact_prod_max_tt_rank, rounded_prod_max_tt_rank) == (
        3,
        2,
        6,
        3,
    )
    difference = t3f.frobenius_norm(prod_tt - rounded_prod_tt)
    dense_difference = np.linalg.norm(t3f.full(prod_tt).numpy() - t3f.full(rounded_prod_tt).numpy())
    np.testing.assert_allclose(difference, np.sqrt(dense_difference**2 + 1e-5), rtol=1e-4)

    # Working with TT-matrices.
    a_dense = np.random.rand(8, 27).astype(np.float32)
    a_matrix_tt = t3f.to_tt_matrix(a_dense, shape=((2, 2, 2), (3, 3, 3)), max_tt_rank=4)
    full_matrix = t3f.full(a_matrix_tt).numpy()
    assert full_matrix.shape == (8, 27)
    np.testing.assert_allclose(
        t3f.frobenius_norm(a_matrix_tt), np.sqrt(np.sum(full_matrix**2) + 1e-5), rtol=1e-5
    )
    twice_a_matrix_tt = 2.0 * a_matrix_tt
    prod_tt = a_matrix_tt * a_matrix_tt
    np.testing.assert_allclose(t3f.full(twice_a_matrix_tt), 2 * full_matrix, rtol=1e-5)
    np.testing.assert_allclose(t3f.full(prod_tt), full_matrix**2, rtol=1e-4, atol=1e-6)
    vector_tt = t3f.random_matrix(((3, 3, 3), (1, 1, 1)), tt_rank=3)
    matvec_tt = t3f.matmul(a_matrix_tt, vector_tt)
    matvec_expected = np.matmul(t3f.full(a_matrix_tt), t3f.full(vector_tt))
    difference = np.linalg.norm(matvec_expected - t3f.full(matvec_tt))
    assert difference < 1e-5


def test_riemannian_optimization_tutorial():
    tf.random.set_seed(0)
    np.random.seed(0)
    # Initialize A randomly, with large tt-ranks.
    shape = 10 * [2]
    a = t3f.random_tensor(shape, tt_rank=16)
    x = t3f.random_tensor(shape, tt_rank=2)

    def loss(x):
        return 0.5 * t3f.frobenius_norm_squared(x - a)

    # The gradient of the functional is X - A; its projection onto the tangent
    # space at X is what t3f.gradients computes by autodiff.
    riemannian_grad = t3f.riemannian.project(x - a, x)
    autodiff_grad = t3f.gradients(loss, x)
    np.testing.assert_allclose(t3f.full(autodiff_grad), t3f.full(riemannian_grad), atol=1e-4)

    @tf.function
    def step(x):
        grad_f = x - a
        riemannian_grad = t3f.riemannian.project(grad_f, x)
        alpha = 1.0
        x = t3f.round(x - alpha * riemannian_grad, max_tt_rank=2)
        return x, loss(x)

    log = [float(loss(x))]
    for _ in range(100):
        x, value = step(x)
        log.append(float(value))
    log = np.array(log)
    # Gradient descent with a unit step: the loss never goes up (up to float32
    # rounding), and ends below the quasi-optimum of TT-round (T3F's docs show
    # 488 vs 518).
    assert np.all(np.diff(log) <= 1e-5 * log[:-1]), log
    quasi_sol = t3f.round(a, max_tt_rank=2)
    val = float(0.5 * t3f.frobenius_norm_squared(quasi_sol - a))
    assert log[-1] < val < log[0]
    assert x.get_tt_ranks().as_list() == [1] + [2] * 9 + [1]


def test_tensor_completion_by_riemannian_gradient_descent():
    np.random.seed(0)
    tf.random.set_seed(0)
    shape = (3, 4, 4, 5, 7, 5)
    # Ground truth A of TT-rank 5, observed with noise in 25% of the entries.
    ground_truth = t3f.full(t3f.random_tensor(shape, tt_rank=5))
    noise = 1e-2 * tf.random.normal(shape)
    noisy_ground_truth = ground_truth + noise
    sparsity_mask = tf.random.uniform(shape) <= 0.25
    observation_idx = tf.cast(tf.where(sparsity_mask), tf.int32)
    observations = tf.gather_nd(noisy_ground_truth, observation_idx)
    num_observed = observation_idx.shape[0]
    assert 0.2 < num_observed / np.prod(shape) < 0.3

    estimated = t3f.random_tensor(shape, tt_rank=5)

    def loss(x):
        estimated_vals = t3f.gather_nd(x, observation_idx)
        return 0.5 * tf.reduce_sum((estimated_vals - observations) ** 2)

    def test_loss(x):
        return tf.reduce_mean((t3f.full(x) - ground_truth) ** 2)

    @tf.function
    def step(x):
        riemannian_grad = t3f.gradients(loss, x, runtime_check=False)
        # A step of the inverse sampling rate (1 / 0.25) fills the unobserved
        # entries in expectation.
        return t3f.round(x - 2.0 * riemannian_grad, max_tt_rank=5)

    start = float(test_loss(estimated))
    for _ in range(40):
        estimated = step(estimated)
    train_mse = 2 * float(loss(estimated)) / num_observed
    final = float(test_loss(estimated))
    # Converged to the noise level (variance 1e-4) on the observed entries,
    # and recovered the unobserved ones: the test MSE (about 1.8 at the start)
    # drops more than 1000-fold, to a few times the noise variance.
    assert train_mse < 2e-4, train_mse
    assert final < 1e-3 * start and final < 5e-4, (start, final)
