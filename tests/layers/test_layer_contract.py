"""Keras's own layer contract, on every layer tfbayes and t3f_ext ship.

Each case runs ``keras.src.testing.TestCase.run_layer_test`` with the training
check (one compiled ``fit`` step) and the mixed-precision check (float32
variables, outputs in the compute dtype), which also covers serialization,
symbolic and eager calls and weight counts. Keras's mixed-precision check only
calls the layer at inference, so every layer is also trained for a step under
``mixed_float16`` outside XLA, where a missing float16 kernel or a float16 KL would
fail. Wrappers (``TimeDistributed``, ``Bidirectional``) get their own cases.

A new layer gets the whole contract by adding one ``Case`` line to ``CASES``.
"""

import dataclasses

import keras
import numpy as np
import pytest
from keras.src.testing import TestCase

import t3f_ext.layers
from tfbayes import layers
from tfbayes.layers.base import BayesianLayer

N = {"num_examples": 100}


@dataclasses.dataclass
class Case:
    """One layer under the contract: ``layer_cls(**init_kwargs)`` called on ``input_shape``."""

    layer_cls: type
    init_kwargs: dict
    input_shape: tuple
    input_dtype: str = "float32"
    wrapper: type = None  # keras.layers.TimeDistributed or Bidirectional: wrap the layer
    xfail: str = None  # a known failure, as a strict xfail: the reason

    @property
    def param(self):
        marks = [pytest.mark.xfail(strict=True, reason=self.xfail)] if self.xfail else []
        return pytest.param(self, id=self.id, marks=marks)

    @property
    def id(self):
        name = self.layer_cls.__name__
        return f"{self.wrapper.__name__}({name})" if self.wrapper else name


CASES = [
    Case(layers.SparseVDDense, dict(units=3, activation="relu", **N), (2, 4)),
    Case(layers.SparseVDDense, dict(units=3, **N), (2, 5, 4)),
    Case(layers.SparseVDConv1D, dict(filters=3, kernel_size=2, **N), (2, 6, 4)),
    Case(layers.SparseVDConv2D, dict(filters=3, kernel_size=2, padding="same", **N), (2, 5, 5, 2)),
    Case(layers.SparseVDConv3D, dict(filters=4, kernel_size=2, groups=2, **N), (2, 3, 4, 3, 2)),
    Case(
        layers.SparseVDEmbedding,
        dict(input_dim=10, output_dim=3, vocabulary_pruning=True, **N),
        (2, 4),
        input_dtype="int32",
    ),
    Case(layers.SBPDropout, dict(**N), (2, 5)),
    Case(layers.SBPDropout, dict(**N), (2, 4, 4, 3)),
    Case(layers.TRIPPrior, dict(num_components=3, rank=2), (2, 4)),
    Case(t3f_ext.layers.TTDense, dict(units=8, tt_rank=2), (2, 16)),
    Case(
        t3f_ext.layers.TTDense, dict(units=8, tt_rank=0.5, implementation="reconstructed"), (2, 16)
    ),
    # "auto" with a threshold of batch 5: a tf.cond where the batch is unknown.
    Case(
        t3f_ext.layers.TTDense,
        dict(units=30, tt_rank=6, input_factorization=[4, 2, 3], output_factorization=[2, 3, 5]),
        (8, 24),
    ),
    Case(t3f_ext.layers.TTConv2D, dict(filters=4, kernel_size=3, tt_rank=2), (2, 5, 5, 4)),
    Case(
        t3f_ext.layers.TTEmbedding,
        dict(input_dim=12, output_dim=4, tt_rank=2),
        (2, 3),
        input_dtype="int32",
    ),
    Case(layers.SparseVDDense, dict(units=3, **N), (2, 5, 4), wrapper=keras.layers.TimeDistributed),
    Case(
        layers.SparseVDConv2D,
        dict(filters=2, kernel_size=2, **N),
        (2, 3, 4, 4, 2),
        wrapper=keras.layers.TimeDistributed,
    ),
    Case(layers.SBPDropout, dict(**N), (2, 3, 5), wrapper=keras.layers.TimeDistributed),
    Case(layers.SparseVDLSTM, dict(units=3, **N), (2, 5, 4)),
    Case(
        layers.SparseVDLSTM,
        dict(units=3, return_sequences=True, **N),
        (2, 5, 4),
        wrapper=keras.layers.Bidirectional,
    ),
    Case(layers.SparseVDGRU, dict(units=3, **N), (2, 5, 4)),
    Case(
        layers.PerforatedConv2D,
        dict(filters=3, kernel_size=3, padding="same", perforation_rate=0.5, mask="grid"),
        (2, 6, 6, 2),
    ),
    Case(layers.AdaptiveComputationBlock, dict(units=2, variant="sact"), (2, 4, 4, 3)),
    Case(
        layers.SparseVDGRU,
        dict(units=3, return_sequences=True, **N),
        (2, 5, 4),
        wrapper=keras.layers.Bidirectional,
    ),
]


def _make(case, **extra):
    """``(layer_cls, init_kwargs)`` for run_layer_test, the wrapper around the layer if any."""
    if case.wrapper is None:
        return case.layer_cls, {**case.init_kwargs, **extra}
    inner = case.layer_cls(**case.init_kwargs, **extra)
    return case.wrapper, {"layer": inner, **extra}


@pytest.mark.parametrize("case", [case.param for case in CASES])
def test_keras_run_layer_test(case):
    layer_cls, init_kwargs = _make(case)
    TestCase("run_layer_test").run_layer_test(
        layer_cls,
        init_kwargs,
        input_shape=case.input_shape,
        input_dtype=case.input_dtype,
        run_training_check=True,
        run_mixed_precision_check=True,
    )


@pytest.mark.parametrize("case", [case.param for case in CASES])
def test_trains_a_step_under_mixed_float16_outside_xla(case):
    layer_cls, init_kwargs = _make(case, dtype="mixed_float16")
    layer = layer_cls(**init_kwargs)
    x = (
        np.random.default_rng(0).integers(0, 3, case.input_shape)
        if case.input_dtype == "int32"
        else np.random.default_rng(0).normal(size=case.input_shape).astype("float32")
    )
    inputs = keras.Input(
        case.input_shape[1:], batch_size=case.input_shape[0], dtype=case.input_dtype
    )
    model = keras.Model(inputs, layer(inputs))
    model.compile(
        "sgd",
        lambda y_true, y_pred: keras.ops.sum(keras.ops.cast(y_pred, "float32")),
        jit_compile=False,
    )
    y = np.zeros(model.outputs[0].shape, "float32")
    before = [w.numpy().copy() for w in model.trainable_weights]
    loss = model.fit(x, y, epochs=1, batch_size=case.input_shape[0], verbose=0).history["loss"]
    assert np.isfinite(loss[0])
    # Every float variable stays float32 (a PerforatedConv2D also keeps its mask, a bool variable).
    assert all(w.dtype == "float32" for w in model.weights if "float" in str(w.dtype))
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))
    model(x, training=True)
    assert all(l.dtype == "float32" for l in model.losses)
    if isinstance(layer, BayesianLayer) or isinstance(getattr(layer, "layer", None), BayesianLayer):
        assert model.losses, "a sparsifying layer adds its KL"
