"""The ELBO bookkeeping of tfbayes.layers.base: KL/N through add_loss, N given once, warm-up."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfbayes import layers
from tfbayes.layers import KLWarmup, set_num_examples
from tfbayes.layers.base import BayesianLayer


class _ScaledIdentity(BayesianLayer):
    """A minimal variational layer whose KL is sum(w^2): enough to test the bookkeeping."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

    def kl_divergence(self):
        return tf.reduce_sum(tf.square(self.w))

    def call(self, x, training=None):
        self.add_kl_loss(training)
        return x * self.w


def _model(**layer_kwargs):
    return keras.Sequential([keras.Input((3,)), _ScaledIdentity(**layer_kwargs)])


def test_added_loss_is_kl_weight_times_kl_over_n():
    model = _model()
    set_num_examples(model, 30)
    model.layers[0].kl_weight.assign(0.5)
    model(np.ones((2, 3), np.float32), training=True)
    (loss,) = model.losses
    np.testing.assert_allclose(float(loss), 0.5 * 3.0 / 30, rtol=1e-6)


def test_fit_without_n_names_the_layer_and_the_fix():
    model = _model(name="bayes")
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"'bayes'.*set_num_examples"):
        model.fit(np.ones((4, 3)), np.ones((4, 3)), verbose=0)


def test_inference_without_n_adds_no_loss():
    model = _model()
    model(np.ones((2, 3), np.float32), training=False)
    assert model.losses == []


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "100"])
def test_set_num_examples_rejects_non_positive_ints(bad):
    with pytest.raises(ValueError, match="num_examples"):
        set_num_examples(_model(), bad)


def test_set_num_examples_on_a_model_without_sparsifying_layers():
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no tfbayes sparsifying layers"):
        set_num_examples(plain, 10)


def test_set_num_examples_reaches_nested_models_and_survives_save(tmp_path):
    inner = _model()
    outer = keras.Sequential([keras.Input((3,)), inner, _ScaledIdentity()])
    assert set_num_examples(outer, 7) == 2
    path = tmp_path / "m.keras"
    outer.save(path)
    loaded = keras.models.load_model(path, custom_objects={"_ScaledIdentity": _ScaledIdentity})
    nested = [layer for layer in loaded._flatten_layers() if isinstance(layer, _ScaledIdentity)]
    assert [layer.num_examples for layer in nested] == [7, 7]


class _RecordKLWeight(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(float(self.model.layers[0].kl_weight.numpy()))


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("kwargs", [{}, {"start": 0.1, "end": 0.5}, {"end": 4.0}])
def test_kl_warmup_ramps_linearly_per_step(jit_compile, kwargs):
    model = _model()
    set_num_examples(model, 8)
    model.compile("sgd", "mse", jit_compile=jit_compile)
    recorder = _RecordKLWeight()
    # 8 examples, batch 2 -> 4 steps per epoch; warm-up over 2 epochs = 8 steps.
    model.fit(
        np.ones((8, 3)),
        np.ones((8, 3)),
        batch_size=2,
        epochs=3,
        verbose=0,
        callbacks=[KLWarmup(warmup_epochs=2, **kwargs), recorder],
    )
    start, end = kwargs.get("start", 0.0), kwargs.get("end", 1.0)  # the defaults: 0 -> 1
    expected = [start + (end - start) * min(1.0, step / 8) for step in range(12)]
    np.testing.assert_allclose(recorder.seen, expected, rtol=1e-6)


def test_kl_warmup_end_tempers_the_kl_in_the_loss():
    """After the warm-up the model's loss is the data loss + end * KL / N."""
    model = _model()
    set_num_examples(model, 8)
    model.compile("sgd", "mse")
    x = np.ones((8, 3), "float32")
    model.fit(x, x, batch_size=8, epochs=2, verbose=0, callbacks=[KLWarmup(1, end=0.25)])
    layer = model.layers[0]
    data_loss = float(np.mean((model.predict(x, verbose=0) - x) ** 2))
    kl_term = 0.25 * float(layer.kl_divergence()) / 8
    np.testing.assert_allclose(float(layer.kl_weight.numpy()), 0.25)
    np.testing.assert_allclose(model.evaluate(x, x, verbose=0), data_loss + kl_term, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"warmup_epochs": 0}, "warmup_epochs"),
        ({"warmup_epochs": "2"}, "warmup_epochs"),
        ({"warmup_epochs": 2, "start": 1.5}, "start"),
        ({"warmup_epochs": 2, "start": 0.8, "end": 0.5}, "start"),
        ({"warmup_epochs": 2, "start": "0"}, "start"),
        ({"warmup_epochs": 2, "end": 0.0}, "end"),
        ({"warmup_epochs": 2, "end": float("nan")}, "end"),
        ({"warmup_epochs": 2, "end": float("inf")}, "end"),
        ({"warmup_epochs": 2, "end": True}, "end"),
    ],
)
def test_kl_warmup_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KLWarmup(**kwargs)


def test_set_num_examples_on_something_not_a_model_names_the_argument():
    with pytest.raises(TypeError, match="model: expected a keras.Model or layer, got str"):
        set_num_examples("model", 10)


@pytest.mark.parametrize(
    "make",
    [
        lambda: layers.SparseVDDense(3),
        lambda: layers.SparseVDConv2D(2, 2),
        lambda: layers.SparseVDEmbedding(3, 2),
        lambda: layers.SBPDropout(),
    ],
    ids=["dense", "conv2d", "embedding", "sbp"],
)
def test_calling_a_layer_on_none_names_the_inputs(make):
    layer = make()
    with pytest.raises(
        TypeError, match=f"Layer '{layer.name}': inputs: expected a tensor or array, got None"
    ):
        layer(None)
    with pytest.raises(TypeError, match="inputs: expected a tensor or array, got \\[None"):
        layer([None])
