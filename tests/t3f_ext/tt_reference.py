"""Dense NumPy references and run-mode helpers shared by the t3f_ext tests.

Imported by the test modules in this directory (pytest puts it on sys.path).
"""

import numpy as np
import pytest
import tensorflow as tf

import t3f_ext as t3f

# Both dtypes eagerly; each compiled mode in one dtype (XLA compilation
# dominates the test time on 2 shared cores).
DTYPE_MODES = pytest.mark.parametrize(
    "dtype,mode",
    [(np.float32, "eager"), (np.float64, "eager"), (np.float32, "xla"), (np.float64, "function")],
    ids=["float32-eager", "float64-eager", "float32-xla", "float64-function"],
)


def run(mode, fn, *args):
    """Calls fn eagerly, inside tf.function, or inside an XLA-compiled one."""
    if mode == "eager":
        return fn(*args)
    return tf.function(fn, jit_compile=mode == "xla")(*args)


def tol(dtype):
    """assert_allclose tolerances for O(1) values computed in ``dtype``."""
    return dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)


def random_cores(rng, modes, ranks, dtype, batch=None):
    """Gaussian NumPy cores; ``modes`` lists per-core tuples (n,) or (m, n)."""
    lead = [] if batch is None else [batch]
    return [
        rng.standard_normal(lead + [ranks[k]] + list(dims) + [ranks[k + 1]]).astype(dtype)
        for k, dims in enumerate(modes)
    ]


def np_full(cores):
    """Dense value of NumPy TT cores: a chain of tensordots, then for a
    TT-matrix the permutation (m_1, n_1, ..., m_d, n_d) -> (M, N)."""
    res = cores[0]
    for core in cores[1:]:
        res = np.tensordot(res, core, axes=([-1], [0]))
    res = res[0, ..., 0]
    if cores[0].ndim == 4:
        d = len(cores)
        res = res.transpose(list(range(0, 2 * d, 2)) + list(range(1, 2 * d, 2)))
        res = res.reshape(
            int(np.prod([c.shape[1] for c in cores])), int(np.prod([c.shape[2] for c in cores]))
        )
    return res


def np_full_batch(cores):
    return np.stack([np_full([c[b] for c in cores]) for b in range(cores[0].shape[0])])


def make(rng, modes, ranks, dtype, batch=None):
    """A TT object built from random NumPy cores, and its dense value."""
    cores = random_cores(rng, modes, ranks, dtype, batch)
    if batch is None:
        return t3f.TensorTrain(cores), np_full(cores)
    return t3f.TensorTrainBatch(cores), np_full_batch(cores)


TENSOR_MODES = [(3,), (4,), (2,)]  # a 3 x 4 x 2 tensor
MATRIX_MODES = [(2, 3), (3, 2), (2, 2)]  # a 12 x 12 matrix
