"""Dense NumPy references for the Riemannian tests (test_riemannian.py,
test_autodiff.py): random TT cores, the dense tensor of a TT object, and the
orthogonal projector onto the tangent space of the TT manifold.

The projector is built independently of the library's formulas: the tangent
space at ``x`` is the range of the Jacobian of the map ``cores -> full(cores)``
at the cores of ``x`` (the manifold is the image of that map, and at a point
of full TT-rank the map is a submersion onto it). Its columns are the dense
tensors obtained by replacing one core with a unit core, so no QR sweep,
gauge condition or deltas are involved.
"""

import numpy as np

import t3f_ext


def random_cores(rng, raw_shape, ranks):
    """NumPy cores (float64) of a TT-tensor (raw_shape = (n,)) or TT-matrix."""
    d = len(raw_shape[0])
    cores = []
    for k in range(d):
        modes = [axis[k] for axis in raw_shape]
        cores.append(rng.standard_normal([ranks[k]] + modes + [ranks[k + 1]]) / np.sqrt(ranks[k]))
    return cores


def random_tt(rng, raw_shape, ranks, dtype, batch_size=None):
    """A TensorTrain (or TensorTrainBatch) with random cores."""
    if batch_size is None:
        return t3f_ext.TensorTrain([c.astype(dtype) for c in random_cores(rng, raw_shape, ranks)])
    many = [random_cores(rng, raw_shape, ranks) for _ in range(batch_size)]
    return t3f_ext.TensorTrainBatch(
        [np.stack([m[k] for m in many]).astype(dtype) for k in range(len(many[0]))]
    )


def dense(cores):
    """The dense tensor of TT cores; a TT-matrix becomes an ``M x N`` matrix."""
    cores = [np.asarray(c, dtype=np.float64) for c in cores]
    res = cores[0]
    for core in cores[1:]:
        res = np.tensordot(res, core, axes=([-1], [0]))
    res = res[0, ..., 0]
    if cores[0].ndim == 4:  # axes (m_1, n_1, m_2, n_2, ...) -> (M, N)
        d = len(cores)
        res = res.transpose(list(range(0, 2 * d, 2)) + list(range(1, 2 * d, 2)))
        rows = int(np.prod([c.shape[1] for c in cores]))
        res = res.reshape(rows, -1)
    return res


def dense_of(tt):
    """Dense tensor of a TensorTrain, or a list of them for a batch."""
    cores = [c.numpy() for c in tt.tt_cores]
    if isinstance(tt, t3f_ext.TensorTrainBatch):
        return [dense([c[b] for c in cores]) for b in range(cores[0].shape[0])]
    return dense(cores)


def tangent_projector(tt):
    """Dense ``P_x`` (acting on ``dense(.).ravel()``) at the TensorTrain ``x``.

    Also checks that the tangent space has the dimension of the manifold,
    ``sum_k r_{k-1} n_k r_k - sum_{k<d} r_k^2`` (Holtz, Rohwedder, Schneider
    2012), which holds at points of full TT-rank.
    """
    cores = [c.numpy().astype(np.float64) for c in tt.tt_cores]
    columns = []
    for k, core in enumerate(cores):
        for index in np.ndindex(*core.shape):
            unit = np.zeros_like(core)
            unit[index] = 1.0
            columns.append(dense(cores[:k] + [unit] + cores[k + 1 :]).ravel())
    jacobian = np.stack(columns, axis=1)
    u, s, _ = np.linalg.svd(jacobian, full_matrices=False)
    rank = int(np.sum(s > s[0] * 1e-9))
    ranks = [c.shape[0] for c in cores] + [1]
    expected = sum(c.size for c in cores) - sum(r * r for r in ranks[1:-1])
    assert rank == expected, (rank, expected)
    basis = u[:, :rank]
    return basis @ basis.T
