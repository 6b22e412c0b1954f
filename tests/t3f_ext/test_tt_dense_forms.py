"""TTDense's parameter budget (float ``tt_rank``) and its two forward forms, against NumPy.

References: the dense product ``x @ W`` with ``W`` rebuilt from the cores by NumPy
einsums, central finite differences for the core gradients (the output is linear
in every core entry, so the central difference is exact up to round-off),
brute-force enumeration of ranks for the budget, and the FLOPs of the GEMMs /
einsums that TensorFlow actually runs (read from the traced graph) for the counts.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from t3f_ext.layers import TTDense
from t3f_ext.layers import factorization
from tf_modes import MODES, run_in_mode

FORMS = ["factorized", "reconstructed", "auto"]


def dense_from_cores(cores):
    """NumPy reconstruction of the ``M x N`` matrix of TT-matrix cores ``[r, m, n, r']``."""
    full = np.ones((1, 1, 1))
    for core in cores:
        full = np.einsum("abr,rmns->ambns", full, core)
        full = full.reshape(full.shape[0] * full.shape[1], full.shape[2] * full.shape[3], -1)
    return full[:, :, 0]


def uniform_params(rank, rows, cols):
    """Parameters of uniform rank ``rank`` capped at min(rank, prod_{<=k} m n, prod_{>k} m n)."""
    sizes = [m * n for m, n in zip(rows, cols)]
    ranks = (
        [1]
        + [min(rank, math.prod(sizes[:k]), math.prod(sizes[k:])) for k in range(1, len(sizes))]
        + [1]
    )
    return sum(ranks[k] * sizes[k] * ranks[k + 1] for k in range(len(sizes))), ranks


def small_layer(dtype, implementation, tt_rank=6, units=30, activation="tanh"):
    layer = TTDense(
        units,
        tt_rank=tt_rank,
        activation=activation,
        implementation=implementation,
        input_factorization=[4, 2, 3],
        output_factorization=[2, 3, 5],
        dtype=np.dtype(dtype).name,
    )
    layer.build((None, 24))
    rng = np.random.default_rng(0)
    layer.bias.assign(rng.normal(size=units).astype(dtype))
    return layer


# ------------------------------------------------------------------ rank budget
@pytest.mark.parametrize(
    "in_dim, out_dim, budget",
    [(24, 30, 0.5), (784, 1024, 0.01), (784, 1024, 0.05), (1024, 1024, 0.1), (64, 64, 1.0)],
)
def test_budget_gives_the_largest_uniform_rank_that_fits(in_dim, out_dim, budget):
    layer = TTDense(out_dim, tt_rank=budget)
    layer.build((None, in_dim))
    allowed = budget * in_dim * out_dim
    core_params = sum(int(np.prod(c.shape)) for c in layer.cores)
    assert core_params == layer.count_params() - out_dim <= allowed
    # Brute force: on the chosen factorization, the next rank that changes the cores exceeds the
    # budget; on every other ordering of the same factors, no larger rank fits.
    rank = max(layer.tt_ranks)
    params, ranks = uniform_params(rank, layer.row_dims, layer.col_dims)
    assert (params, ranks) == (core_params, layer.tt_ranks)
    bigger = [
        uniform_params(r, layer.row_dims, layer.col_dims) for r in range(rank + 1, 2 * rank + 2)
    ]
    changed = [p for p, rs in bigger if rs != ranks]
    assert not changed or changed[0] > allowed
    for rows in factorization._orderings(None, in_dim, len(layer.row_dims)):
        for cols in factorization._orderings(None, out_dim, len(layer.col_dims)):
            assert all(
                uniform_params(r, rows, cols)[0] > allowed
                or uniform_params(r, rows, cols)[1] == uniform_params(rank, rows, cols)[1]
                for r in range(rank + 1, rank + 4)
            )


def test_budget_with_a_given_factorization_and_numpy_float():
    layer = TTDense(
        30, tt_rank=np.float32(0.5), input_factorization=[4, 2, 3], output_factorization=[2, 3, 5]
    )
    layer.build((None, 24))
    assert (layer.row_dims, layer.col_dims) == ((4, 2, 3), (2, 3, 5))
    # 360 allowed: rank 5 -> 5*8 + 25*6 + 5*15 = 265, rank 6 -> 6*8 + 36*6 + 6*15 = 354,
    # rank 7 -> 7*8 + 7*6*6 (capped at 6 by the last core) + 6*15 = 398.
    assert layer.tt_ranks == [1, 6, 6, 1]


@pytest.mark.parametrize(
    "tt_rank, message",
    [
        (0.0, r"`tt_rank` as a float .* must be in \(0, 1\], got 0.0"),
        (-0.1, r"must be in \(0, 1\], got -0.1"),
        (1.5, r"must be in \(0, 1\], got 1.5"),
        (float("nan"), r"must be in \(0, 1\], got nan"),
        (float("inf"), r"must be in \(0, 1\], got inf"),
    ],
)
def test_bad_budgets_raise_naming_tt_rank(tt_rank, message):
    with pytest.raises(ValueError, match=message):
        TTDense(30, tt_rank=tt_rank)


def test_budget_below_rank_one_raises_at_build():
    layer = TTDense(1024, tt_rank=1e-5)
    with pytest.raises(
        ValueError,
        match=r"`tt_rank`=1e-05 allows 10 of the 1048576 dense "
        r"parameters, but TT-rank 1 already needs \d+",
    ):
        layer.build((None, 1024))


def test_bad_implementation_raises():
    with pytest.raises(
        ValueError,
        match=r"`implementation` must be one of \['auto', 'factorized', "
        r"'reconstructed'\], got 'dense'",
    ):
        TTDense(30, implementation="dense")


# ------------------------------------------------------------------ forward forms
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("implementation", FORMS)
@pytest.mark.parametrize("input_shape", [(5, 24), (40, 24), (2, 3, 24)], ids=["b5", "b40", "3d"])
def test_every_form_equals_the_dense_numpy_product(dtype, mode, implementation, input_shape):
    layer = small_layer(dtype, implementation)
    x = np.random.default_rng(1).normal(size=input_shape).astype(dtype)
    out = run_in_mode(lambda v: layer(v), mode, tf.constant(x))
    kernel = dense_from_cores([c.numpy().astype(np.float64) for c in layer.cores])
    expected = np.tanh(x.astype(np.float64) @ kernel + layer.bias.numpy())
    assert out.dtype == dtype and out.shape == input_shape[:-1] + (30,)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out.numpy(), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("implementation", ["factorized", "reconstructed"])
def test_core_gradients_match_finite_differences(implementation):
    layer = small_layer(np.float64, implementation, activation=None)
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(7, 24)))
    weights = tf.constant(rng.normal(size=(7, 30)))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(weights * layer(x))
    grads = tape.gradient(loss, layer.cores)
    cores = [c.numpy() for c in layer.cores]

    def numpy_loss(cores):
        return float(np.sum(weights.numpy() * (x.numpy() @ dense_from_cores(cores))))

    for k, core in enumerate(cores):
        for index in [(0, 0, 0, 0), tuple(s - 1 for s in core.shape), (0, 1, 1, 0)]:
            step = 0.5
            plus = [c.copy() for c in cores]
            minus = [c.copy() for c in cores]
            plus[k][index] += step
            minus[k][index] -= step
            numeric = (numpy_loss(plus) - numpy_loss(minus)) / (2 * step)
            np.testing.assert_allclose(grads[k].numpy()[index], numeric, rtol=1e-9, atol=1e-9)


def test_auto_switches_at_the_threshold_also_when_the_batch_is_unknown(dtype):
    layer = small_layer(dtype, "auto")
    threshold = layer.reconstruct_from_batch
    assert threshold is not None and 1 < threshold < 40
    # The threshold is the first batch where reconstruction wins both counts (brute force).
    costs = [layer.forward_costs(b) for b in range(1, 60)]
    wins = [
        c["reconstructed"]["flops"] < c["factorized"]["flops"]
        and c["reconstructed"]["memory"] <= c["factorized"]["memory"]
        for c in costs
    ]
    assert wins.index(True) + 1 == threshold and all(wins[threshold - 1 :])
    assert [layer.implementation_for(b) for b in (threshold - 1, threshold)] == [
        "factorized",
        "reconstructed",
    ]
    kernel = dense_from_cores([c.numpy().astype(np.float64) for c in layer.cores])
    for jit in (False, True):
        fn = tf.function(
            lambda v: layer(v), jit_compile=jit, input_signature=[tf.TensorSpec([None, 24], dtype)]
        )
        graph = fn.get_concrete_function().graph
        assert any(op.type in ("If", "StatelessIf") for op in graph.get_operations())
        for batch in (threshold - 1, threshold, 3 * threshold):
            x = np.random.default_rng(batch).normal(size=(batch, 24)).astype(dtype)
            tol = 1e-5 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(
                fn(tf.constant(x)).numpy(),
                np.tanh(x @ kernel + layer.bias.numpy()),
                rtol=tol,
                atol=tol,
            )


def test_low_rank_auto_never_reconstructs_and_fixed_forms_are_kept():
    low = TTDense(1024, tt_rank=4)
    low.build((None, 1024))
    assert low.reconstruct_from_batch is None and low.implementation_for(10**6) == "factorized"
    for implementation, threshold in (("factorized", None), ("reconstructed", 1)):
        layer = TTDense(1024, tt_rank=32, implementation=implementation)
        layer.build((None, 1024))
        assert layer.reconstruct_from_batch == threshold


def _graph_flops(fn, x):
    """2 * (product of all index sizes) of every MatMul / BatchMatMul / Einsum op run by ``fn``."""
    graph = tf.function(fn).get_concrete_function(x).graph
    total = 0
    for op in graph.get_operations():
        if op.type == "MatMul":
            a, b = (t.shape.as_list() for t in op.inputs)
            inner = a[0] if op.get_attr("transpose_a") else a[1]
            total += 2 * int(np.prod(op.outputs[0].shape.as_list())) * inner
        elif op.type == "Einsum":
            equation = op.get_attr("equation").decode()
            sizes = {}
            for spec, tensor in zip(equation.split("->")[0].split(","), op.inputs):
                sizes.update(
                    zip(
                        spec.replace("...", ""),
                        tensor.shape.as_list()[-len(spec.replace("...", "")) :],
                    )
                )
            total += 2 * int(np.prod(list(sizes.values())))
        elif op.type in ("BatchMatMulV2", "BatchMatMulV3"):
            raise AssertionError("unexpected batched GEMM")
    return total


@pytest.mark.parametrize("right_to_left", [True, False])
def test_flop_counts_match_the_ops_tensorflow_runs(right_to_left):
    layer = small_layer(np.float64, "factorized", activation=None)
    layer.right_to_left = right_to_left
    x = tf.zeros([9, 24], tf.float64)
    costs = layer.forward_costs(9)
    assert _graph_flops(layer._matmul, x) == costs["factorized"]["flops"]
    layer.reconstruct_from_batch = 1
    assert _graph_flops(layer._matmul, x) == costs["reconstructed"]["flops"]


def _created_elements(fn, x, op_types):
    graph = tf.function(fn).get_concrete_function(x).graph
    return sum(
        int(np.prod(op.outputs[0].shape.as_list()))
        for op in graph.get_operations()
        if op.type in op_types
    )


@pytest.mark.parametrize("right_to_left", [True, False])
def test_memory_counts_match_the_tensors_created(right_to_left):
    layer = small_layer(np.float64, "factorized", activation=None)
    layer.right_to_left = right_to_left
    # Per row: the difference between two batch sizes drops the per-core transposes.
    per_row = _created_elements(
        layer._matmul, tf.zeros([19, 24], tf.float64), ("MatMul", "Transpose")
    ) - _created_elements(layer._matmul, tf.zeros([9, 24], tf.float64), ("MatMul", "Transpose"))
    assert per_row == 10 * layer.forward_costs(1)["factorized"]["memory"]
    layer.reconstruct_from_batch = 1
    created = _created_elements(
        layer._matmul, tf.zeros([9, 24], tf.float64), ("Einsum", "Transpose", "MatMul")
    )
    assert created == layer.forward_costs(9)["reconstructed"]["memory"]


# ------------------------------------------------------------------ summary, config, saving
def test_summary_and_repr_report_ranks_budget_and_form():
    layer = TTDense(1024, tt_rank=0.05)
    with pytest.raises(ValueError, match="is not built"):
        layer.summary()
    layer.build((None, 784))
    lines = []
    layer.summary(batch_sizes=(1, 512), print_fn=lines.append)
    text = lines[0]
    threshold = layer.reconstruct_from_batch
    assert f"TT-ranks {layer.tt_ranks}" in text and "[4, 4, 7, 7] x [8, 8, 4, 4]" in text
    assert "from the budget tt_rank=0.05: <= 40,141" in text
    assert f"factorized below batch {threshold}, reconstructed from it on" in text
    costs = layer.forward_costs(512)
    assert f"{costs['reconstructed']['flops']:.3g}" in text.splitlines()[-1]
    assert text.splitlines()[-1].split()[:2] == ["512", "reconstructed"]
    assert f"reconstructed from batch {threshold}" in repr(layer)


@pytest.mark.parametrize("implementation", FORMS)
def test_config_round_trip_and_keras_file(tmp_path, implementation):
    inputs = keras.Input((24,))
    layer = TTDense(30, tt_rank=0.4, implementation=implementation)
    assert TTDense.from_config(layer.get_config()).get_config() == layer.get_config()
    model = keras.Model(inputs, layer(inputs))
    config = layer.get_config()
    assert config["implementation"] == implementation and config["tt_rank"] == layer.tt_ranks
    clone = TTDense.from_config(config)
    clone.build((None, 24))
    assert clone.get_config() == config
    assert (clone.tt_ranks, clone.reconstruct_from_batch) == (
        layer.tt_ranks,
        layer.reconstruct_from_batch,
    )
    path = str(tmp_path / "tt_dense.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(3).normal(size=(50, 24)).astype("float32")
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_with_auto_trains_every_core_through_the_batch_dependent_choice(jit_compile):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(66, 24)).astype("float32")
    y = rng.normal(size=(66, 30)).astype("float32")
    layer = TTDense(30, tt_rank=6, input_factorization=[4, 2, 3], output_factorization=[2, 3, 5])
    model = keras.Sequential([keras.Input((24,)), layer])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", jit_compile=jit_compile)
    # Batches of 32 reconstruct, the last batch of 2 runs factorized.
    assert [layer.implementation_for(b) for b in (32, 2)] == ["reconstructed", "factorized"]
    before = [c.numpy().copy() for c in layer.cores]
    history = model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert all(np.abs(c.numpy() - b).max() > 1e-4 for c, b in zip(layer.cores, before))
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_from_dense_takes_a_budget():
    from t3f_ext.layers import from_dense

    dense = keras.layers.Dense(30)
    dense.build((None, 24))
    compressed = from_dense(
        dense, tt_rank=0.3, input_factorization=[4, 2, 3], output_factorization=[2, 3, 5]
    )
    reference = TTDense(
        30, tt_rank=0.3, input_factorization=[4, 2, 3], output_factorization=[2, 3, 5]
    )
    reference.build((None, 24))
    assert compressed.tt_ranks == reference.tt_ranks
    assert compressed.count_params() - 30 <= 0.3 * 24 * 30
    # TT-SVD at those ranks: the error is the truncation error, below the kernel's norm.
    kernel = dense.kernel.numpy()
    error = np.linalg.norm(dense_from_cores([c.numpy() for c in compressed.cores]) - kernel)
    assert 0 < error < np.linalg.norm(kernel)


def test_t3f_keras_dense_takes_the_budget_and_the_form(tmp_path):
    import t3f_ext

    layer = t3f_ext.nn.KerasDense(
        input_dims=[4, 2, 3],
        output_dims=[2, 3, 5],
        tt_rank=0.5,
        implementation="reconstructed",
        activation="tanh",
    )
    inputs = keras.Input((24,))
    model = keras.Model(inputs, layer(inputs))
    assert layer.tt_ranks == [1, 6, 6, 1]  # derived in test_budget_with_a_given_factorization_...
    x = np.random.default_rng(6).normal(size=(4, 24)).astype("float32")
    kernel = dense_from_cores([c.numpy().astype(np.float64) for c in layer.cores])
    np.testing.assert_allclose(
        model(x).numpy(), np.tanh(x @ kernel + layer.b.numpy()), rtol=1e-5, atol=1e-5
    )
    path = str(tmp_path / "keras_dense.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.layers[-1].implementation == "reconstructed"
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
