"""Uncertainty metrics for classifiers: NLL, calibration (ECE, reliability diagram), Brier
score and out-of-distribution AUROC from the predictive entropy.

The plain functions take predicted class probabilities ``probs`` of shape ``[N, C]`` and
labels of shape ``[N]`` (integers in ``[0, C)``) or ``[N, C]`` (one-hot), as NumPy arrays
or tensors, and compute in float64. The Keras metrics (:class:`NegativeLogLikelihood`,
:class:`BrierScore`, :class:`ExpectedCalibrationError`) accumulate the same quantities
over batches inside ``model.fit`` / ``evaluate``; they take ``from_logits``.
"""

import keras
import numpy as np
from keras import ops

# -log p is computed as -log(max(p, _TINY)): finite (at most ~708) even for p = 0.
_TINY = float(np.finfo(np.float64).tiny)


def _check_probs(probs, name="probs"):
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0 or probs.shape[1] < 2:
        raise ValueError(
            f"{name}: expected class probabilities of shape [N, C] with N >= 1 and "
            f"C >= 2, got shape {probs.shape}"
        )
    return probs


def _check_labels(labels, probs):
    labels = np.asarray(labels)
    n, c = probs.shape
    if labels.shape == (n, c):
        return labels.argmax(-1)
    if labels.shape == (n, 1):
        labels = labels[:, 0]
    if labels.shape != (n,):
        raise ValueError(
            f"labels: expected integer labels of shape ({n},) or one-hot labels of "
            f"shape ({n}, {c}) to match probs, got shape {labels.shape}"
        )
    if not np.all(np.isin(labels, np.arange(c))):
        raise ValueError(
            f"labels: expected integers in [0, {c}), got values in [{labels.min()}, {labels.max()}]"
        )
    return labels.astype(np.int64)


def _check_num_bins(num_bins):
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise ValueError(f"num_bins: expected a positive int, got {num_bins!r}")
    return int(num_bins)


def negative_log_likelihood(labels, probs):
    """Mean negative log-likelihood ``-(1/N) sum_i log p_i[y_i]`` (nats).

    ``p = 0`` counts as ``-log(2.2e-308) ~ 708`` instead of infinity."""
    probs = _check_probs(probs)
    labels = _check_labels(labels, probs)
    picked = probs[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.maximum(picked, _TINY))))


def brier_score(labels, probs):
    """Multi-class Brier score ``(1/N) sum_i sum_k (p_ik - [y_i = k])^2``, in ``[0, 2]``
    (Brier 1950; twice the binary ``brier_score_loss`` of scikit-learn when C = 2)."""
    probs = _check_probs(probs)
    labels = _check_labels(labels, probs)
    one_hot = np.eye(probs.shape[1])[labels]
    return float(np.mean(np.sum((probs - one_hot) ** 2, axis=-1)))


def reliability_diagram(labels, probs, num_bins=15):
    """Confidence and accuracy in equal-width confidence bins (the reliability diagram).

    The confidence of a prediction is its top probability ``max_k p_ik``, its
    correctness ``argmax_k p_ik == y_i``. Bin ``b`` holds the confidences in
    ``(b/B, (b+1)/B]`` (confidence 0 goes to bin 0).

    Returns:
      A dict of NumPy arrays: ``bin_edges`` ``[B + 1]``, ``counts`` ``[B]``, and the
      per-bin mean ``confidence`` and ``accuracy`` ``[B]`` (NaN in empty bins).
    """
    probs = _check_probs(probs)
    labels = _check_labels(labels, probs)
    num_bins = _check_num_bins(num_bins)
    confidence = probs.max(-1)
    correct = (probs.argmax(-1) == labels).astype(np.float64)
    bins = np.clip(np.ceil(confidence * num_bins).astype(np.int64) - 1, 0, num_bins - 1)
    counts = np.bincount(bins, minlength=num_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, confidence, num_bins) / counts
        accuracy = np.bincount(bins, correct, num_bins) / counts
    return {
        "bin_edges": np.linspace(0.0, 1.0, num_bins + 1),
        "counts": counts,
        "confidence": mean_confidence,
        "accuracy": accuracy,
    }


def expected_calibration_error(labels, probs, num_bins=15):
    """Expected calibration error with ``B = num_bins`` equal-width bins (Guo et al. 2017):

        ECE = sum_b (n_b / N) |accuracy_b - confidence_b|,

    over the bins of :func:`reliability_diagram` (empty bins contribute 0)."""
    diagram = reliability_diagram(labels, probs, num_bins)
    counts = diagram["counts"]
    gaps = np.abs(diagram["accuracy"] - diagram["confidence"])
    return float(np.sum(np.where(counts > 0, counts * np.nan_to_num(gaps), 0.0)) / counts.sum())


def predictive_entropy(probs):
    """``H_i = -sum_k p_ik log p_ik`` per example (nats), shape ``[N]``; ``0 log 0 = 0``."""
    probs = _check_probs(probs)
    return -np.sum(probs * np.log(np.maximum(probs, _TINY)), axis=-1)


def ood_auroc(probs_in, probs_out):
    """AUROC of telling out-of-distribution inputs from in-distribution ones by their
    predictive entropy (higher entropy: more likely OOD).

    It is the probability that an OOD example has a higher entropy than an
    in-distribution one, ties counting 1/2 (the Mann-Whitney statistic), so 0.5 is chance
    and 1 a perfect separation.

    Args:
      probs_in: ``[N_in, C]`` predicted probabilities on in-distribution inputs.
      probs_out: ``[N_out, C]`` predicted probabilities on OOD inputs.

    Cost: O((N_in + N_out) log(N_in + N_out)).
    """
    probs_in = _check_probs(probs_in, "probs_in")
    probs_out = _check_probs(probs_out, "probs_out")
    if probs_in.shape[1] != probs_out.shape[1]:
        raise ValueError(
            f"probs_out: expected {probs_in.shape[1]} classes as in probs_in, got "
            f"{probs_out.shape[1]}"
        )
    scores = np.concatenate([predictive_entropy(probs_in), predictive_entropy(probs_out)])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    # Ties share their average rank.
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, ranks)
    ranks = (sums / counts)[inverse]
    n_in, n_out = len(probs_in), len(probs_out)
    return float((ranks[n_in:].sum() - n_out * (n_out + 1) / 2) / (n_in * n_out))


# Keras metrics ---------------------------------------------------------------------------


def _tensor_labels_and_probs(y_true, y_pred, from_logits):
    probs = ops.softmax(y_pred, axis=-1) if from_logits else y_pred
    probs = ops.cast(probs, "float32")
    num_classes = probs.shape[-1]
    if (
        len(y_true.shape) == len(probs.shape)
        and y_true.shape[-1] == num_classes
        and num_classes != 1
    ):
        labels = ops.argmax(y_true, axis=-1)
    else:
        labels = ops.reshape(y_true, (-1,))
    return ops.cast(labels, "int32"), probs


def _per_example_nll(y_true, y_pred, from_logits=False):
    labels, probs = _tensor_labels_and_probs(y_true, y_pred, from_logits)
    picked = ops.take_along_axis(probs, ops.expand_dims(labels, -1), axis=-1)[:, 0]
    return -ops.log(ops.maximum(picked, np.finfo(np.float32).tiny))


def _per_example_brier(y_true, y_pred, from_logits=False):
    labels, probs = _tensor_labels_and_probs(y_true, y_pred, from_logits)
    one_hot = ops.one_hot(labels, probs.shape[-1], dtype=probs.dtype)
    return ops.sum(ops.square(probs - one_hot), axis=-1)


class _PerExampleMean(keras.metrics.MeanMetricWrapper):
    """Streaming mean of a per-example score ``fn(y_true, y_pred, from_logits)``."""

    def __init__(self, fn, from_logits, name, dtype):
        super().__init__(fn, name=name, dtype=dtype, from_logits=from_logits)
        self.from_logits = from_logits

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="tfbayes")
class NegativeLogLikelihood(_PerExampleMean):
    """Streaming mean of :func:`negative_log_likelihood` (sparse or one-hot labels).

    Args:
      from_logits: whether the model outputs logits.
    """

    def __init__(self, from_logits=False, name="nll", dtype=None):
        super().__init__(_per_example_nll, from_logits, name, dtype)


@keras.saving.register_keras_serializable(package="tfbayes")
class BrierScore(_PerExampleMean):
    """Streaming mean of :func:`brier_score` (sparse or one-hot labels).

    Args:
      from_logits: whether the model outputs logits.
    """

    def __init__(self, from_logits=False, name="brier", dtype=None):
        super().__init__(_per_example_brier, from_logits, name, dtype)


@keras.saving.register_keras_serializable(package="tfbayes")
class ExpectedCalibrationError(keras.metrics.Metric):
    """Streaming :func:`expected_calibration_error`: per-bin counts, confidence sums and
    correct counts accumulate over batches (``sample_weight`` weights the examples).

    Args:
      num_bins: the number of equal-width confidence bins.
      from_logits: whether the model outputs logits.
    """

    def __init__(self, num_bins=15, from_logits=False, name="ece", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_bins = _check_num_bins(num_bins)
        self.from_logits = from_logits
        self.counts = self.add_variable((self.num_bins,), "zeros", name="counts")
        self.confidence_sums = self.add_variable((self.num_bins,), "zeros", name="confidence")
        self.correct_sums = self.add_variable((self.num_bins,), "zeros", name="correct")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels, probs = _tensor_labels_and_probs(y_true, y_pred, self.from_logits)
        confidence = ops.max(probs, axis=-1)
        correct = ops.cast(
            ops.equal(ops.cast(ops.argmax(probs, axis=-1), "int32"), labels), "float32"
        )
        bins = ops.clip(
            ops.cast(ops.ceil(confidence * self.num_bins), "int32") - 1, 0, self.num_bins - 1
        )
        weights = (
            ops.ones_like(confidence)
            if sample_weight is None
            else ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        )
        one_hot = ops.one_hot(bins, self.num_bins, dtype="float32") * weights[:, None]
        for variable, values in (
            (self.counts, ops.ones_like(confidence)),
            (self.confidence_sums, confidence),
            (self.correct_sums, correct),
        ):
            variable.assign_add(
                ops.cast(ops.sum(one_hot * values[:, None], axis=0), variable.dtype)
            )

    def result(self):
        # sum_b (n_b / N) |acc_b - conf_b| = sum_b |correct_b - confidence_sum_b| / N
        return ops.sum(ops.abs(self.correct_sums - self.confidence_sums)) / ops.maximum(
            ops.sum(self.counts), 1e-12
        )

    def reset_state(self):
        for variable in (self.counts, self.confidence_sums, self.correct_sums):
            variable.assign(ops.zeros_like(variable))

    def get_config(self):
        return {
            "name": self.name,
            "dtype": self.dtype,
            "num_bins": self.num_bins,
            "from_logits": self.from_logits,
        }
