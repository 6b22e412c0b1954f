"""tfbayes.metrics against scikit-learn, scipy and hand computations."""

import keras
import numpy as np
import pytest
import scipy.stats
import sklearn.metrics

from tfbayes import metrics


def random_predictions(n=500, c=4, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = np.array([rng.choice(c, p=p) for p in probs])  # roughly calibrated
    return labels, probs, logits


def test_nll_and_brier_equal_sklearn():
    labels, probs, _ = random_predictions()
    assert metrics.negative_log_likelihood(labels, probs) == pytest.approx(
        sklearn.metrics.log_loss(labels, probs, labels=range(4)), rel=1e-12
    )
    assert metrics.brier_score(labels, probs) == pytest.approx(
        sklearn.metrics.brier_score_loss(labels, probs, labels=range(4), scale_by_half=False),
        rel=1e-12,
    )
    one_hot = np.eye(4)[labels]
    assert metrics.brier_score(one_hot, probs) == metrics.brier_score(labels, probs)
    # p = 0 on the true class stays finite.
    assert metrics.negative_log_likelihood([0], [[0.0, 1.0]]) == pytest.approx(708.4, abs=0.1)


def test_ece_by_hand():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.55, 0.45]])
    labels = np.array([0, 0, 1, 1])
    # Bins of width 0.2: 0.55 -> (0.4, 0.6] wrong; 0.8, 0.7 -> (0.6, 0.8] one right;
    # 0.9 -> (0.8, 1] right.  ECE = 1/4 * 0.55 + 2/4 * |0.5 - 0.75| + 1/4 * 0.1.
    assert metrics.expected_calibration_error(labels, probs, num_bins=5) == pytest.approx(0.2875)
    diagram = metrics.reliability_diagram(labels, probs, num_bins=5)
    np.testing.assert_array_equal(diagram["counts"], [0, 0, 1, 2, 1])
    np.testing.assert_allclose(diagram["confidence"][2:], [0.55, 0.75, 0.9])
    np.testing.assert_allclose(diagram["accuracy"][2:], [0.0, 0.5, 1.0])
    assert np.isnan(diagram["accuracy"][:2]).all()
    np.testing.assert_allclose(diagram["bin_edges"], np.linspace(0, 1, 6))


def test_ece_equals_loop_reference():
    labels, probs, _ = random_predictions(seed=1)
    probs = probs**3 / (probs**3).sum(-1, keepdims=True)  # overconfident
    confidence, correct = probs.max(-1), probs.argmax(-1) == labels
    reference = 0.0
    for lo, hi in zip(np.linspace(0, 1, 11)[:-1], np.linspace(0, 1, 11)[1:]):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            reference += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    assert metrics.expected_calibration_error(labels, probs, 10) == pytest.approx(reference)
    assert reference > 0.05


def test_ood_auroc_equals_sklearn():
    rng = np.random.default_rng(2)
    _, probs_in, _ = random_predictions(300, seed=2)
    probs_out = rng.dirichlet(np.ones(4), size=200)
    probs_out[:20] = probs_in[:20]  # ties between the two sets
    entropy = np.concatenate([scipy.stats.entropy(probs_in.T), scipy.stats.entropy(probs_out.T)])
    is_ood = np.r_[np.zeros(300), np.ones(200)]
    assert metrics.ood_auroc(probs_in, probs_out) == pytest.approx(
        sklearn.metrics.roc_auc_score(is_ood, entropy), rel=1e-12
    )
    np.testing.assert_allclose(metrics.predictive_entropy(probs_in), entropy[:300], rtol=1e-12)
    uniform = np.full((5, 4), 0.25)
    confident = np.tile([[0.97, 0.01, 0.01, 0.01]], (5, 1))
    assert metrics.ood_auroc(confident, uniform) == 1.0
    assert metrics.ood_auroc(uniform, uniform) == 0.5


@pytest.mark.parametrize("jit", [False, True])
def test_keras_metrics_stream_the_plain_functions(jit):
    labels, probs, logits = random_predictions(256, seed=3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Identity()])
    model.compile(
        loss="sparse_categorical_crossentropy",
        jit_compile=jit,
        metrics=[
            metrics.NegativeLogLikelihood(from_logits=True),
            metrics.BrierScore(from_logits=True),
            metrics.ExpectedCalibrationError(num_bins=10, from_logits=True),
        ],
    )
    result = model.evaluate(
        logits.astype(np.float32), labels, batch_size=50, verbose=0, return_dict=True
    )
    assert result["nll"] == pytest.approx(metrics.negative_log_likelihood(labels, probs), rel=1e-5)
    assert result["brier"] == pytest.approx(metrics.brier_score(labels, probs), rel=1e-5)
    assert result["ece"] == pytest.approx(
        metrics.expected_calibration_error(labels, probs, 10), rel=1e-4, abs=1e-6
    )
    ece = metrics.ExpectedCalibrationError(num_bins=10)
    ece.update_state(np.eye(4)[labels[:100]], probs[:100].astype(np.float32))
    ece.update_state(labels[100:, None], probs[100:].astype(np.float32))
    assert float(ece.result()) == pytest.approx(result["ece"], rel=1e-5)
    ece.reset_state()
    assert float(ece.result()) == 0.0
    restored = metrics.ExpectedCalibrationError.from_config(ece.get_config())
    assert restored.num_bins == 10 and restored.from_logits is False


def test_bad_input():
    labels, probs, _ = random_predictions(10)
    with pytest.raises(ValueError, match=r"probs: expected class probabilities of shape \[N, C\]"):
        metrics.brier_score(labels, probs[:, 0])
    with pytest.raises(ValueError, match=r"labels: expected integer labels of shape \(10,\)"):
        metrics.negative_log_likelihood(labels[:5], probs)
    with pytest.raises(ValueError, match=r"labels: expected integers in \[0, 4\)"):
        metrics.negative_log_likelihood(labels + 4, probs)
    with pytest.raises(ValueError, match="num_bins: expected a positive int, got 0"):
        metrics.expected_calibration_error(labels, probs, num_bins=0)
    with pytest.raises(ValueError, match="probs_out: expected 4 classes as in probs_in, got 3"):
        metrics.ood_auroc(probs, probs[:, :3])
    with pytest.raises(ValueError, match="probs_in: expected class probabilities"):
        metrics.ood_auroc(probs[:0], probs)
