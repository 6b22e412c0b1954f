"""Riemannian geometry of the manifold of fixed-TT-rank tensors and matrices.

Let ``x`` be a TT object with ``d`` cores. Orthogonalising its cores left to
right gives left-orthonormal cores ``U_1 .. U_{d-1}``; orthogonalising that
result right to left gives right-orthonormal cores ``V_2 .. V_d``. Every
vector of the tangent space at ``x`` is (Lubich, Oseledets, Vandereycken,
"Time integration of tensor trains", SIAM J. Numer. Anal. 2015, Sec. 3)::

  dX = sum_k  U_1 .. U_{k-1}  dP_k  V_{k+1} .. V_d,                       (1)

with "deltas" ``dP_k`` shaped like the k-th core, which obey the gauge
conditions ``unfold(U_k)^T unfold(dP_k) = 0`` for ``k < d`` (``unfold``: the
left unfolding ``[r_{k-1} n_k, r_k]``). As a TT object, (1) has the cores::

  [dP_1  U_1],   [[V_k, 0], [dP_k, U_k]]  (1 < k < d),   [[V_d], [dP_d]],  (2)

i.e. TT-ranks ``2 r_k``: this is the representation T3F uses and the one every
function here returns. The orthogonal projection of ``z`` onto the tangent
space (Thm. 3.1 of the same paper) has the deltas::

  dP_k = (I - unfold(U_k) unfold(U_k)^T) (U_{<k}^T z V_{>k}^T),  k < d,
  dP_d = U_{<d}^T z,                                                       (3)

which, for ``z`` given in TT format with ranks ``s_k``, costs
``O(d n r s (r + s))`` per TT object (``n``: the largest mode size, ``n_k m_k``
for TT-matrices; ``r``: the largest rank of ``where``), plus
``O(d n r^3)`` for orthogonalising ``where``. Nothing of size ``prod(n_k)``
is ever formed.

A TT-matrix is handled as the TT-tensor whose k-th mode is the pair
``(m_k, n_k)``: the tangent space and the projection do not see the
difference, so all internal work is done on cores ``[r, m_k n_k, r']``.

Every tangent vector made here remembers its point: its ``projection_on``
is a static int identifying the point (T3F stores the point object itself),
given by `tangent_space_id`. `add_n_projected` and
`pairwise_flat_inner_projected` refuse vectors without one or of different
points, in eager mode, in `tf.function` and under XLA alike, since the
identifier is part of the TypeSpec. A consequence: a tangent vector passed
into a `tf.function` as an argument traces it once per point.
"""

import itertools
import weakref

import tensorflow as tf

from t3f_ext import decompositions
from t3f_ext import utils

__all__ = [
    "project",
    "project_sum",
    "project_matmul",
    "pairwise_flat_inner_projected",
    "add_n_projected",
    "tangent_space_to_deltas",
    "deltas_to_tangent_space",
]


# Identifiers of points.

_POINT_IDS = {}  # tuple of id(core) -> (tuple of weakrefs to the cores, id)
_NEXT_POINT_ID = itertools.count(1)


def tangent_space_id(where):
    """The static int that identifies the point `where` (its tangent space).

    Two TT objects get the same identifier exactly when they hold the same
    core objects (tensors or variables), e.g. ``where`` and
    ``TensorTrain(where.tt_cores)``. Identifiers are never reused: an entry
    dies with its cores (weak references), and a new point takes a new number.
    Inside a `tf.function` the cores of an argument are new symbolic tensors
    on every trace, so the point gets a new identifier per trace.
    """
    cores = tuple(where.tt_cores)
    key = tuple(id(core) for core in cores)
    entry = _POINT_IDS.get(key)
    if entry is not None and all(ref() is core for ref, core in zip(entry[0], cores)):
        return entry[1]
    point_id = next(_NEXT_POINT_ID)

    def forget(_, key=key, point_id=point_id):
        if _POINT_IDS.get(key, (None, None))[1] == point_id:
            del _POINT_IDS[key]

    _POINT_IDS[key] = (tuple(weakref.ref(core, forget) for core in cores), point_id)
    return point_id


def _check_same_tangent_space(objects, names):
    """ValueError unless all carry one non-None `projection_on`."""
    for tt, tt_name in zip(objects, names):
        if tt.projection_on is None:
            raise ValueError(
                "%s must be a tangent vector (from project, project_sum, "
                "project_matmul, deltas_to_tangent_space, gradients or "
                "add_n_projected), which remembers its point in projection_on; "
                "got %s with projection_on None" % (tt_name, utils.describe_shape(tt))
            )
    for tt, tt_name in zip(objects[1:], names[1:]):
        if tt.projection_on != objects[0].projection_on:
            raise ValueError(
                "%s and %s must be tangent vectors at the same point; they were "
                "projected at different points (projection_on %d and %d)"
                % (names[0], tt_name, objects[0].projection_on, tt.projection_on)
            )


# Argument checks.


def _check_point(where, arg_name="where"):
    """`where` must be a single TensorTrain: a point of the manifold."""
    utils.check_single(where, arg_name, "the point whose tangent space is used")


def _check_compatible(what, where, what_name="what", where_name="where"):
    """Same kind (TT-tensor or TT-matrix), raw shape and dtype."""
    utils.check_tt(what, what_name)
    utils.check_same_raw_shape(what, where, what_name, where_name)
    utils.check_same_dtype(what, where, what_name, where_name)


def _check_tangent(tt, arg_name):
    """Returns the TT-ranks of `tt`, checking they are doubled as in (2)."""
    utils.check_tt(tt, arg_name)
    ranks = tt.get_tt_ranks().as_list()
    if any(r % 2 for r in ranks[1:-1]):
        raise ValueError(
            "%s must be a tangent-space vector (the output of project, "
            "project_sum, project_matmul, gradients, deltas_to_tangent_space...) "
            "whose inner TT-ranks are doubled, hence even; got TT-ranks %s" % (arg_name, ranks)
        )
    return ranks


# Core-level helpers. Internally every core is [r, n, r'] (TT-matrix modes
# merged by `utils.merged_cores`), with a leading batch axis where stated.


def _frames(where):
    """Left- and right-orthonormal merged cores of `where`.

    Returns ``(left, right)``: ``left[k]``, ``k < d-1``, are the ``U`` cores
    of (1) and ``right[k]``, ``k > 0``, the ``V`` cores; ``left[d-1]`` and
    ``right[0]`` carry the norm, and each list represents `where`.

    The QR sweeps shrink a TT-rank ``r_k`` that exceeds ``r_{k-1} n_k`` (left
    to right) or ``n_{k+1} r_{k+1}`` (right to left). If the second sweep
    shrinks a rank further, a third (left to right) sweep gives ``U`` cores of
    the same ranks as the ``V`` cores, so that the tangent vectors have ranks
    exactly ``2 r_k`` and `tangent_space_to_deltas` can split them in halves.

    Cost: two QR sweeps (three for such over-ranked points), ``O(d n r^3)``.
    """
    left_tt = decompositions.orthogonalize_tt_cores(where, left_to_right=True)
    right_tt = decompositions.orthogonalize_tt_cores(left_tt, left_to_right=False)
    if left_tt.get_tt_ranks() != right_tt.get_tt_ranks():
        left_tt = decompositions.orthogonalize_tt_cores(right_tt, left_to_right=True)
    return utils.merged_cores(left_tt), utils.merged_cores(right_tt)


class _Cores:
    """The TT object ``z`` to project, given by its merged cores
    ``[..., s_{k-1}, n_k, s_k]`` (optional leading batch dims)."""

    def __init__(self, cores):
        self.cores = cores

    def core(self, k):
        return self.cores[k]

    def left(self, k, lhs):
        """``lhs [..., a, s_{k-1}]`` times core k: ``[..., a, n_k, s_k]``."""
        return tf.einsum("...at,...tiu->...aiu", lhs, self.cores[k])

    def right(self, k, rhs):
        """Core k times ``rhs [..., s_k, q]``: ``[..., s_{k-1}, n_k, q]``."""
        return tf.einsum("...tis,...sq->...tiq", self.cores[k], rhs)


class _MatmulCores:
    """The product ``z = matrix @ what`` of TT-matrices, never formed.

    Its k-th core would be ``[R_{k-1} s_{k-1}, m_k l_k, R_k s_k]`` (``R``:
    ranks of `matrix`, ``s``: ranks of `what`, ``l``: column modes of `what`),
    costing ``O(R^2 s^2 m n l)``; `left` and `right` contract the running
    state with the core of `what` first, then with the core of `matrix`:
    ``O(r R s n l (s + m R))`` per core.
    """

    def __init__(self, matrix, what):
        self.matrix = list(matrix.tt_cores)  # [R, m, n, R']
        self.what = list(what.tt_cores)  # [..., s, n, l, s']
        self.num_batch_dims = utils.batch_dims(what)

    def _merge(self, x, *tail):
        return utils.reshape_tail(x, self.num_batch_dims, tail)

    def core(self, k):
        a, z = self.matrix[k], self.what[k]
        product = tf.einsum("mijn,...tjlu->...mtilnu", a, z)
        return self._merge(
            product, a.shape[0] * z.shape[-4], a.shape[1] * z.shape[-2], a.shape[-1] * z.shape[-1]
        )

    def left(self, k, lhs):
        a, z = self.matrix[k], self.what[k]
        lhs = self._merge(lhs, lhs.shape[-2], a.shape[0], z.shape[-4])
        y = tf.einsum("...amt,...tjlu->...amjlu", lhs, z)
        y = tf.einsum("...amjlu,mijn->...ailnu", y, a)
        return self._merge(y, lhs.shape[-3], a.shape[1] * z.shape[-2], a.shape[-1] * z.shape[-1])

    def right(self, k, rhs):
        a, z = self.matrix[k], self.what[k]
        rhs = self._merge(rhs, a.shape[-1], z.shape[-1], rhs.shape[-1])
        y = tf.einsum("...tjlu,...nuq->...tjlnq", z, rhs)
        y = tf.einsum("mijn,...tjlnq->...mtilq", a, y)
        return self._merge(y, a.shape[0] * z.shape[-4], a.shape[1] * z.shape[-2], rhs.shape[-1])


def _projection_deltas(left, right, what, weights=None):
    """The deltas (3) of the projections of (a batch of) TT objects.

    Args:
      left, right: merged cores from `_frames`.
      what: a `_Cores` or `_MatmulCores`, with optional leading batch dims
        (none for one TT object, which then costs plain matrix products).
      weights: None, or a ``[B, O]`` tensor (then `what` has one batch dim B).

    Returns:
      ``d`` deltas ``[..., a_{k-1}, n_k, c_k]`` (``a``: ranks of the ``U``,
      ``c``: ranks of the ``V``) if `weights` is None; else ``[O, ...]``, the
      deltas of the projections of ``sum_b weights[b, o] what[b]`` (the
      projection is linear).
    """
    d = len(left)
    # rhs[k] = z_{>=k} contracted with V_{>=k}: [..., s_{k-1}, c_{k-1}]. The
    # boundary ranks are 1, so the recursions start from the end cores.
    rhs = [None] * d
    if d > 1:
        rhs[d - 1] = tf.einsum("...tiq,piq->...tp", what.core(d - 1), right[d - 1])
    for k in range(d - 2, 0, -1):
        rhs[k] = tf.einsum("...tiq,piq->...tp", what.right(k, rhs[k + 1]), right[k])
    deltas = []
    lhs = None  # U_{<k}^T z_{<k}: [..., a_{k-1}, s_{k-1}].
    for k in range(d):
        # y = U_{<k}^T z_{<=k}: [..., a_{k-1}, n_k, s_k].
        y = what.core(0) if k == 0 else what.left(k, lhs)
        if k == d - 1:
            delta = y  # the last delta has no gauge condition.
        else:
            lhs = tf.einsum("aiv,...aiu->...vu", left[k], y)
            gauge = tf.einsum("...vu,...uq->...vq", lhs, rhs[k + 1])
            delta = tf.einsum("...aiu,...uq->...aiq", y, rhs[k + 1]) - tf.einsum(
                "aiv,...vq->...aiq", left[k], gauge
            )
        if weights is not None:
            delta = tf.einsum("baiq,bo->oaiq", delta, weights)
        deltas.append(delta)
    return deltas


def _tangent_cores(deltas, left, right, batched):
    """The merged cores (2) of the tangent vector(s) with the given deltas.

    If `batched`, the deltas have a leading batch axis and the frame cores are
    broadcast along it.
    """
    d = len(deltas)
    if d == 1:
        return [deltas[0]]
    lax, rax = (1, 3) if batched else (0, 2)

    def frame(core):
        if not batched:
            return core
        shape = tf.concat([tf.shape(deltas[0])[:1], tf.shape(core)], axis=0)
        return tf.broadcast_to(core[None], shape)

    cores = [tf.concat([deltas[0], frame(left[0])], axis=rax)]
    for k in range(1, d - 1):
        v, u = frame(right[k]), frame(left[k])
        zeros = tf.zeros(tf.concat([tf.shape(v)[:-1], tf.shape(u)[-1:]], axis=0), v.dtype)
        top = tf.concat([v, zeros], axis=rax)
        bottom = tf.concat([deltas[k], u], axis=rax)
        cores.append(tf.concat([top, bottom], axis=lax))
    cores.append(tf.concat([frame(right[d - 1]), deltas[d - 1]], axis=lax))
    return cores


def _batch_cores(what):
    """Merged cores with a leading batch axis (of size 1 for a TensorTrain)."""
    cores = utils.merged_cores(what)
    if utils.batch_dims(what):
        return cores
    return [core[None] for core in cores]


def _tangent_tt(deltas, left, right, where, batched):
    cores = _tangent_cores(deltas, left, right, batched)
    return utils.split_modes(
        cores, where.get_raw_shape(), int(batched), tangent_space=tangent_space_id(where)
    )


# Public API.


def project(what, where):
    """Orthogonal projection onto the tangent space at `where`: ``P_x(what)``.

    ``project(what, x) = P_x(what)``; for a batch,
    ``project(batch, x)[i] = P_x(batch[i])``. Formula (3) of this module
    (Lubich, Oseledets, Vandereycken 2015, Thm. 3.1).

    Args:
      what: TensorTrain or TensorTrainBatch with the raw shape and dtype of
        `where` and TT-ranks ``s``.
      where: TensorTrain (TT-tensor or TT-matrix) ``x`` with TT-ranks ``r``.

    Returns:
      TensorTrain (TensorTrainBatch for a batch) in the tangent space at
      `where`, with inner TT-ranks ``2 r_k``: representation (2).

    Cost: ``O(d n r^3)`` to orthogonalise `where`, plus
    ``O(B d n r s (r + s))`` for a batch of ``B``.
    """
    _check_point(where)
    _check_compatible(what, where)
    left, right = _frames(where)
    deltas = _projection_deltas(left, right, _Cores(utils.merged_cores(what)))
    return _tangent_tt(deltas, left, right, where, bool(utils.batch_dims(what)))


def project_sum(what, where, weights=None):
    """Projection of a (weighted) sum: ``P_x(sum_i weights[i] what[i])``.

    * ``project_sum(tt, x) = P_x(tt)``;
    * ``project_sum(batch, x) = P_x(sum_i batch[i])``;
    * ``project_sum(batch, x, w)``, ``w`` of shape ``[B]`` or ``[B, 1]``:
      ``P_x(sum_i w[i] batch[i])``;
    * ``w`` of shape ``[B, O]``, ``O > 1``: the batch of the ``O`` vectors
      ``P_x(sum_i w[i, o] batch[i])``.

    The sum is never formed in TT format (its ranks would be ``B s``): the
    projection is linear, so the deltas (3) are summed.

    Args:
      what: TensorTrain or TensorTrainBatch (batch size ``B``).
      where: TensorTrain, the point of the manifold.
      weights: None, or a list / tensor of shape ``[B]`` or ``[B, O]``.

    Returns:
      TensorTrain, or TensorTrainBatch of ``O`` vectors; TT-ranks ``2 r``.

    Cost: as `project` of the batch, plus ``O(B O d n r^2)``.
    """
    _check_point(where)
    _check_compatible(what, where)
    batch_size = what.batch_size if utils.batch_dims(what) else 1
    if weights is None:
        weights = tf.ones([batch_size or tf.shape(what.tt_cores[0])[0], 1], dtype=where.dtype)
    else:
        weights = tf.convert_to_tensor(weights, dtype=where.dtype)
        if weights.shape.rank == 1:
            weights = weights[:, None]
        if weights.shape.rank != 2 or not tf.TensorShape([batch_size, None]).is_compatible_with(
            weights.shape
        ):
            raise ValueError(
                "weights must have shape [B] or [B, O] with B = %s, the batch size "
                "of what; got shape %s" % (batch_size, weights.shape.as_list())
            )
    left, right = _frames(where)
    deltas = _projection_deltas(left, right, _Cores(_batch_cores(what)), weights)
    batched = weights.shape[1] != 1
    if not batched:
        deltas = [delta[0] for delta in deltas]
    return _tangent_tt(deltas, left, right, where, batched)


def project_matmul(what, where, matrix):
    """Projection of a matrix-by-TT product: ``P_x(matrix @ what)``.

    Formula (3) with ``z = matrix @ what``, whose TT-cores (ranks ``R s``) are
    never formed: each recursion step contracts a core of `matrix` and a core
    of `what` with the running state, one at a time.

    Args:
      what: TensorTrain or TensorTrainBatch TT-matrix of raw shape ``(N, K)``,
        e.g. TT "vectors" ``(N, 1)``.
      where: TensorTrain TT-matrix of raw shape ``(M, K)``.
      matrix: TensorTrain TT-matrix of raw shape ``(M, N)``, TT-ranks ``R``.

    Returns:
      TensorTrain (TensorTrainBatch for a batch) with TT-ranks ``2 r``.

    Cost: ``O(d n r^3)`` to orthogonalise `where`, plus
    ``O(B d r R s n l (r + s + m R))`` for a batch of ``B``, with ``m, n, l``
    the row modes of `matrix`, of `what` and the column modes of `what`.
    """
    _check_point(where)
    _check_point(matrix, "matrix")
    utils.check_tt(what, "what", matrix=True)
    utils.check_tt(where, "where", matrix=True)
    utils.check_tt(matrix, "matrix", matrix=True)
    m_shape, w_shape, x_shape = (
        matrix.get_raw_shape(),
        what.get_raw_shape(),
        where.get_raw_shape(),
    )
    if m_shape[1] != w_shape[0] or m_shape[0] != x_shape[0] or w_shape[1] != x_shape[1]:
        raise ValueError(
            "matrix @ what must have the raw shape of where; got matrix %s, what "
            "%s and where %s"
            % (
                utils.describe_shape(matrix),
                utils.describe_shape(what),
                utils.describe_shape(where),
            )
        )
    utils.check_same_dtype(what, where, "what", "where")
    utils.check_same_dtype(matrix, where, "matrix", "where")
    left, right = _frames(where)
    deltas = _projection_deltas(left, right, _MatmulCores(matrix, what))
    return _tangent_tt(deltas, left, right, where, bool(utils.batch_dims(what)))


def tangent_space_to_deltas(tt, name="t3f_tangent_space_to_deltas"):
    """The deltas ``[dP_1, .., dP_d]`` of a tangent vector in form (2).

    Args:
      tt: TensorTrain or TensorTrainBatch from `project`, `project_sum`,
        `project_matmul`, `gradients`, `deltas_to_tangent_space`, ...
      name: name scope.

    Returns:
      A list of ``d`` tensors shaped like the cores of the point (with the
      batch axis first for a batch). Cost: slicing only.
    """
    ranks = _check_tangent(tt, "tt")
    with tf.name_scope(name):
        d = tt.ndims()
        if d == 1:
            return [tt.tt_cores[0]]
        lax, rax = tt.left_tt_rank_dim, tt.right_tt_rank_dim
        deltas = []
        for k, core in enumerate(tt.tt_cores):
            index = [slice(None)] * core.shape.rank
            if k > 0:
                index[lax] = slice(ranks[k] // 2, None)
            if k < d - 1:
                index[rax] = slice(0, ranks[k + 1] // 2)
            deltas.append(core[tuple(index)])
        return deltas


def deltas_to_tangent_space(deltas, tt, left=None, right=None, name="t3f_deltas_to_tangent_space"):
    """The tangent vector (1)-(2) at `tt` with the given deltas.

    The deltas should obey the gauge conditions (module docstring): (2) is a
    tangent vector anyway, but `tangent_space_to_deltas` and
    `pairwise_flat_inner_projected` only invert it under those conditions.
    Deltas with a leading batch axis give a TensorTrainBatch.

    Args:
      deltas: ``d`` tensors shaped like the cores of `tt`, with an optional
        leading batch axis.
      tt: TensorTrain, the point.
      left: optional ``orthogonalize_tt_cores(tt)``, to save its cost.
      right: optional ``orthogonalize_tt_cores(left, left_to_right=False)``.
      name: name scope.

    Returns:
      TensorTrain or TensorTrainBatch with TT-ranks ``2 r``.

    Cost: ``O(d n r^3)`` to orthogonalise `tt` unless `left` and `right` are
    given; then only concatenations.
    """
    _check_point(tt, "tt")
    d = tt.ndims()
    if not isinstance(deltas, (list, tuple)) or len(deltas) != d:
        raise ValueError(
            "deltas must be a list of %d tensors (one per TT-core of tt), got %s"
            % (
                d,
                "a list of %d" % len(deltas)
                if isinstance(deltas, (list, tuple))
                else type(deltas).__name__,
            )
        )
    with tf.name_scope(name):
        if left is None:
            left = decompositions.orthogonalize_tt_cores(tt)
        if right is None:
            right = decompositions.orthogonalize_tt_cores(left, left_to_right=False)
        left_cores = utils.merged_cores(left)
        right_cores = utils.merged_cores(right)
        deltas = [tf.convert_to_tensor(delta, dtype=tt.dtype) for delta in deltas]
        batched = deltas[0].shape.rank == tt.tt_cores[0].shape.rank + 1
        merged = []
        for k, delta in enumerate(deltas):
            modes = tt.tt_cores[k].shape[1:-1]
            expected = tf.TensorShape(
                [None] * batched
                + [left_cores[k].shape[0]]
                + modes.as_list()
                + [right_cores[k].shape[-1]]
            )
            if not expected.is_compatible_with(delta.shape):
                raise ValueError(
                    "deltas[%d] must have shape %s, got %s" % (k, expected, delta.shape)
                )
            merged.append(
                utils.reshape_tail(
                    delta,
                    int(batched),
                    [left_cores[k].shape[0], modes.num_elements(), right_cores[k].shape[-1]],
                )
            )
        return _tangent_tt(merged, left_cores, right_cores, tt, batched)


def _batch_deltas(tt):
    deltas = tangent_space_to_deltas(tt)
    if utils.batch_dims(tt):
        return deltas
    return [delta[None] for delta in deltas]


def pairwise_flat_inner_projected(projected_tt_vectors_1, projected_tt_vectors_2):
    """Gram matrix of two batches of vectors of one tangent space.

    ``res[i, j] = flat_inner(projected_tt_vectors_1[i],
    projected_tt_vectors_2[j])``. The terms of (1) are mutually orthogonal
    (gauge conditions, orthonormal frames), so
    ``<dX, dY> = sum_k <dP_k, dQ_k>``.

    Args:
      projected_tt_vectors_1: TensorTrainBatch (or TensorTrain) of ``B1``
        tangent vectors at one point.
      projected_tt_vectors_2: the same for ``B2`` vectors at the same point.

    Returns:
      ``[B1, B2]`` tensor (a TensorTrain counts as a batch of one).

    Cost: ``O(B1 B2 d n r^2)``, against ``O(B1 B2 d n r^3)`` for
    `batch_ops.pairwise_flat_inner` of the ``2 r``-rank TT objects.
    """
    names = ("projected_tt_vectors_1", "projected_tt_vectors_2")
    ranks_1 = _check_tangent(projected_tt_vectors_1, names[0])
    ranks_2 = _check_tangent(projected_tt_vectors_2, names[1])
    _check_same_tangent_space((projected_tt_vectors_1, projected_tt_vectors_2), names)
    _check_compatible(projected_tt_vectors_1, projected_tt_vectors_2, *names)
    if ranks_1 != ranks_2:
        raise ValueError(
            "%s and %s must be tangent vectors at one point, so "
            "their TT-ranks must match; got %s and %s" % (names + (ranks_1, ranks_2))
        )
    return tf.add_n(
        [
            tf.linalg.matmul(
                utils.reshape_tail(a, 1, [-1]), utils.reshape_tail(b, 1, [-1]), transpose_b=True
            )
            for a, b in zip(
                _batch_deltas(projected_tt_vectors_1), _batch_deltas(projected_tt_vectors_2)
            )
        ]
    )


def add_n_projected(tt_objects, coef=None):
    """Sum of tangent vectors at one point, keeping the TT-ranks ``2 r``.

    ``add_n_projected([a, b])`` equals ``add(a, b)`` for tangent vectors at one
    point, whose ranks would double again; here only the deltas are summed.

    Args:
      tt_objects: a list of TensorTrain, or of TensorTrainBatch of one batch
        size ``B``: tangent vectors at one point.
      coef: None, or weights of shape ``[N]`` (``N = len(tt_objects)``), or
        ``[N, B]`` for batches (a weight per object and batch element).

    Returns:
      A TT object like ``tt_objects[0]``: ``sum_i coef[i] tt_objects[i]``.

    Cost: ``O(N B d n r^2)``.
    """
    if not isinstance(tt_objects, (list, tuple)) or not tt_objects:
        raise ValueError(
            "tt_objects must be a non-empty list of tangent vectors, got %r" % (tt_objects,)
        )
    first = tt_objects[0]
    ranks = _check_tangent(first, "tt_objects[0]")
    for i, tt in enumerate(tt_objects[1:], start=1):
        name = "tt_objects[%d]" % i
        if _check_tangent(tt, name) != ranks:
            raise ValueError(
                "all tt_objects must be tangent vectors at one point, so their "
                "TT-ranks must match; tt_objects[0] has %s and %s has %s"
                % (ranks, name, tt.get_tt_ranks().as_list())
            )
        if utils.batch_dims(tt) != utils.batch_dims(first):
            raise TypeError(
                "tt_objects must all be TensorTrain or all "
                "TensorTrainBatch; tt_objects[0] is a %s and %s a %s"
                % (type(first).__name__, name, type(tt).__name__)
            )
        _check_compatible(tt, first, name, "tt_objects[0]")
    _check_same_tangent_space(tt_objects, ["tt_objects[%d]" % i for i in range(len(tt_objects))])
    batched = utils.batch_dims(first)
    n = len(tt_objects)
    if coef is None:
        coef = tf.ones([n], dtype=first.dtype)
    coef = tf.convert_to_tensor(coef, dtype=first.dtype)
    allowed = [tf.TensorShape([n])]
    if batched:
        allowed.append(tf.TensorShape([n, first.batch_size]))
    if not any(shape.is_compatible_with(coef.shape) for shape in allowed):
        raise ValueError(
            "coef must have shape %s, got %s" % (" or ".join(str(s) for s in allowed), coef.shape)
        )
    all_deltas = [tangent_space_to_deltas(tt) for tt in tt_objects]
    lax, rax = first.left_tt_rank_dim, first.right_tt_rank_dim
    d = first.ndims()
    cores = []
    for k in range(d):
        stacked = tf.stack([deltas[k] for deltas in all_deltas])
        weight = tf.reshape(
            coef, coef.shape.as_list() + [1] * (stacked.shape.rank - coef.shape.rank)
        )
        delta = tf.reduce_sum(weight * stacked, axis=0)
        if d == 1:
            cores.append(delta)
            continue
        core = first.tt_cores[k]
        blocks = []
        if k > 0:  # The top block row [V_k, 0] is common to all tt_objects.
            index = [slice(None)] * core.shape.rank
            index[lax] = slice(0, ranks[k] // 2)
            blocks.append(core[tuple(index)])
        bottom = delta
        if k < d - 1:  # So is the block U_k right of the delta.
            index = [slice(None)] * core.shape.rank
            index[lax] = slice(ranks[k] // 2, None) if k > 0 else slice(None)
            index[rax] = slice(ranks[k + 1] // 2, None)
            bottom = tf.concat([delta, core[tuple(index)]], axis=rax)
        blocks.append(bottom)
        cores.append(tf.concat(blocks, axis=lax))
    return utils.wrap(cores, batched, tangent_space=first.projection_on)
