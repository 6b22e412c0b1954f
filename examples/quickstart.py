"""tfbayes quickstart: one short, real run of each feature (about a minute on a CPU).

    python examples/quickstart.py

1. Sparse Variational Dropout finds the 3 informative inputs out of 40, and
   compress() exports a smaller plain Keras model with the same predictions.
2. Implicit reparameterization: a Monte-Carlo gradient through Gamma samples
   matches the closed form d/d(alpha) E[z] = 1/rate.
3. t3f_ext: a TT-matrix times a vector equals the dense product, and TT-SVD
   recovers a low-rank tensor.
4. TRIP: a tensor-ring mixture of 10^8 Gaussians, its log-density and samples.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfbayes  # noqa: E402, F401  (first: imports TensorFlow without its C++ start-up lines)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import t3f_ext as t3f  # noqa: E402
import tfbayes.distributions as tbd  # noqa: E402
from tfbayes import layers, sparsity  # noqa: E402


def sparse_variational_dropout():
    print("== 1. Sparse Variational Dropout: 3 informative inputs out of 40")
    keras.utils.set_random_seed(0)  # the batch order too, so that every run is the same run
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 40)).astype("float32")
    y = x[:, :3] @ np.array([[2.0], [-3.0], [1.5]], "float32") + 0.1 * rng.normal(size=(2000, 1))
    model = keras.Sequential([keras.Input((40,)), layers.SparseVDDense(1, seed=0)])
    layers.set_num_examples(model, len(x))  # N, given once: the loss is the per-example -ELBO
    epochs, batch_size = 30, 100
    steps = epochs * len(x) // batch_size
    schedule = keras.optimizers.schedules.PolynomialDecay(0.05, steps, 0.001)
    model.compile(keras.optimizers.Adam(schedule), "mse", jit_compile=True)
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
    print(sparsity.sparsity_report(model))
    kept_inputs = np.flatnonzero(model.layers[0].weight_mask("kernel").numpy()[:, 0])
    print(
        "inputs kept:",
        kept_inputs.tolist(),
        "weights:",
        np.round(model.layers[0].kernel.numpy()[kept_inputs, 0], 2).tolist(),
    )
    small = sparsity.compress(model)
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    print(
        "compress(): a plain Keras model with kernel shape",
        tuple(small.layers[-1].kernel.shape),
        "and the same predictions",
    )
    assert kept_inputs.tolist() == [0, 1, 2]


def implicit_gradients():
    print("== 2. Implicit reparameterization gradients through Gamma samples")
    alpha = tf.constant(0.5, tf.float64)
    rate = tf.constant(2.0, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(alpha)
        z = tbd.Gamma(concentration=alpha, rate=rate).sample(200_000, seed=[1, 2])
        mean = tf.reduce_mean(z)
    grad = tape.gradient(mean, alpha)
    print(f"d/dalpha E[z]: Monte Carlo {float(grad):.4f}, closed form 1/rate = {1 / 2:.4f}")
    assert abs(float(grad) - 0.5) < 0.01


def tensor_trains():
    print("== 3. t3f_ext: Tensor-Train matrices and TT-SVD")
    w = t3f.random_matrix(((4, 8, 8), (4, 8, 8)), tt_rank=4, dtype=tf.float64)
    v = tf.random.stateless_normal((256, 1), seed=[3, 4], dtype=tf.float64)
    np.testing.assert_allclose(t3f.matmul(w, v), t3f.full(w) @ v, rtol=1e-10)
    print(
        "TT-matrix 256x256 at rank 4:",
        sum(int(tf.size(c)) for c in w.tt_cores),
        "parameters instead of",
        256 * 256,
    )
    low_rank = t3f.full(t3f.random_tensor((10, 10, 10, 10), tt_rank=3, dtype=tf.float64))
    tt = t3f.to_tt_tensor(low_rank, max_tt_rank=3)
    err = float(tf.norm(t3f.full(tt) - low_rank) / tf.norm(low_rank))
    print(
        f"TT-SVD of a rank-3 10^4 tensor: ranks {tt.get_tt_ranks().as_list()}, relative error {err:.1e}"
    )
    assert err < 1e-10


def trip_prior():
    print("== 4. TRIP: a tensor-ring mixture of 10^8 Gaussians")
    m, d, r = 8, 10, 4
    rng = np.random.default_rng(0)
    prior = tbd.TRIP(
        locs=rng.normal(size=(m, d)),
        scales=np.full((m, d), 0.5),
        cores=rng.uniform(size=(m, d, r, r)),
    )
    z = prior.sample(5, seed=[5, 6])
    print("samples", z.shape, "log_prob", np.round(prior.log_prob(z).numpy(), 2))
    assert np.all(np.isfinite(prior.log_prob(z).numpy()))


if __name__ == "__main__":
    sparse_variational_dropout()
    implicit_gradients()
    tensor_trains()
    trip_prior()
    print("quickstart: all checks passed")
