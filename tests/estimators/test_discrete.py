"""Bernoulli and Categorical: score function and measure-valued gradients vs exact enumeration.

The distributions are parameterized by logits, so the measure-valued
decomposition (with respect to the probabilities) reaches them by the chain
rule. Enumerating every joint outcome gives the exact gradient and the exact
variance of one sample's gradient estimate; the mean of ``R`` estimates must
match the former within 4 standard errors, and ``N`` times their variance the
latter within 5 standard errors of a variance estimate.
"""

import itertools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfbayes.estimators as est

tfd = tfp.distributions
REPEATS, SAMPLES = 300, 20

BERNOULLI_LOGITS = np.array([0.4, -1.1, 0.9])
CATEGORICAL_LOGITS = np.array([[0.2, -0.5, 1.0], [0.7, 0.1, -0.3]])
TABLE = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.5], [2.5, -0.7, 1.2]])
WEIGHTS = np.array([1.0, -2.0, 1.5])


def bernoulli_f(x):
    x = np.asarray(x, np.float64) if not tf.is_tensor(x) else tf.cast(x, tf.float64)
    total = x[..., 0] * WEIGHTS[0] + x[..., 1] * WEIGHTS[1] + x[..., 2] * WEIGHTS[2]
    return (total - 0.7) ** 2 + 0.5 * x[..., 0] * x[..., 2]


def categorical_f(x):
    if tf.is_tensor(x):
        return tf.gather_nd(tf.constant(TABLE), tf.cast(x, tf.int32))
    return TABLE[x[..., 0], x[..., 1]]


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def bernoulli_reference():
    """Exact gradient and per-sample variances (score function, measure-valued) wrt logits."""
    p = _sigmoid(BERNOULLI_LOGITS)
    outcomes = np.array(list(itertools.product([0, 1], repeat=3)))
    probs = np.prod(np.where(outcomes == 1, p, 1 - p), axis=1)
    values = bernoulli_f(outcomes)
    score = outcomes - p  # d log p(x) / d logits
    sf = values[:, None] * score
    gradient = probs @ sf
    mv = np.empty_like(sf)  # chain rule: dp/dlogit = p (1 - p)
    for i in range(3):
        one, zero = outcomes.copy(), outcomes.copy()
        one[:, i], zero[:, i] = 1, 0
        mv[:, i] = p[i] * (1 - p[i]) * (bernoulli_f(one) - bernoulli_f(zero))
    variance = {
        name: probs @ (terms - gradient) ** 2
        for name, terms in (("score_function", sf), ("measure_valued", mv))
    }
    np.testing.assert_allclose(probs @ mv, gradient, rtol=1e-12)
    return gradient, variance


def categorical_reference():
    p = _softmax(CATEGORICAL_LOGITS)
    outcomes = np.array(list(itertools.product(range(3), repeat=2)))
    probs = p[0, outcomes[:, 0]] * p[1, outcomes[:, 1]]
    values = categorical_f(outcomes)
    score = np.stack([np.eye(3)[outcomes[:, i]] - p[i] for i in range(2)], 1)  # [9, 2, 3]
    sf = values[:, None, None] * score
    gradient = np.einsum("o,oij->ij", probs, sf)
    # Coupled measure-valued per-sample estimate, through the softmax:
    # p_ij (f(x_i = j) - sum_k p_ik f(x_i = k)); the shared negative draw cancels.
    mv = np.empty_like(sf)
    for i in range(2):
        by_class = np.stack(
            [categorical_f(np.where(np.arange(2) == i, k, outcomes)) for k in range(3)], 1
        )  # [9, 3]
        mv[:, i] = p[i] * (by_class - by_class @ p[i][:, None])
    variance = {
        name: np.einsum("o,oij->ij", probs, (terms - gradient) ** 2)
        for name, terms in (("score_function", sf), ("measure_valued", mv))
    }
    np.testing.assert_allclose(np.einsum("o,oij->ij", probs, mv), gradient, rtol=1e-12)
    return gradient, variance


CASES = {
    "Bernoulli": (
        lambda logits: tfd.Bernoulli(logits=logits),
        BERNOULLI_LOGITS,
        bernoulli_f,
        bernoulli_reference,
    ),
    "Categorical": (
        lambda logits: tfd.Categorical(logits=logits),
        CATEGORICAL_LOGITS,
        categorical_f,
        categorical_reference,
    ),
}


@pytest.mark.parametrize("estimator", ["score_function", "measure_valued"])
@pytest.mark.parametrize("family", sorted(CASES))
def test_against_enumeration(family, estimator):
    make, logits, f, reference = CASES[family]
    gradient, variance = reference()
    logits = tf.constant(logits, tf.float64)
    stats = est.gradient_variance(
        getattr(est, estimator), f, make(logits), SAMPLES, REPEATS, seed=(0, 5), parameters=[logits]
    )
    estimates = stats.estimates[0].numpy()
    mean = estimates.mean(0)
    assert np.all(np.abs(mean - gradient) <= 4 * np.sqrt(stats.variance[0].numpy() / REPEATS))
    # Variance of one estimate = per-sample variance / N.
    squared = (estimates - mean) ** 2
    variance_error = np.sqrt(squared.var(0) / REPEATS)
    assert np.all(
        np.abs(stats.variance[0].numpy() - variance[estimator] / SAMPLES)
        <= 5 * variance_error + 1e-12
    )


@pytest.mark.parametrize("family", sorted(CASES))
def test_measure_valued_independent_negatives_unbiased(family):
    make, logits, f, reference = CASES[family]
    gradient, _ = reference()
    logits = tf.constant(logits, tf.float64)
    stats = est.gradient_variance(
        est.measure_valued,
        f,
        make(logits),
        SAMPLES,
        REPEATS,
        seed=(0, 6),
        parameters=[logits],
        coupled=False,
    )
    mean = stats.mean[0].numpy()
    assert np.all(np.abs(mean - gradient) <= 4 * np.sqrt(stats.variance[0].numpy() / REPEATS))


def test_measure_valued_probs_parameterization():
    """Given ``probs`` directly: the enumeration's gradient, through TFP's normalization."""
    probs = tf.constant(_softmax(CATEGORICAL_LOGITS), tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(probs)
        dist = tfd.Categorical(probs=probs)
        outcomes = np.array(list(itertools.product(range(3), repeat=2)))
        exact = tf.reduce_sum(
            tf.exp(tf.reduce_sum(dist.log_prob(outcomes), -1)) * categorical_f(outcomes)
        )
    exact_gradient = tape.gradient(exact, probs).numpy()
    stats = est.gradient_variance(
        est.measure_valued,
        categorical_f,
        tfd.Categorical(probs=probs),
        SAMPLES,
        100,
        seed=(0, 8),
        parameters=[probs],
    )
    # d/dp_k of p_x / sum(p) at sum(p) = 1 is [x = k] - p_x: exactly c (p+ - p-).
    assert np.all(
        np.abs(stats.mean[0].numpy() - exact_gradient)
        <= 4 * np.sqrt(stats.variance[0].numpy() / 100) + 1e-12
    )
