"""Projections remember their point: vectors of different tangent spaces are
not combined, eagerly, in tf.function and under XLA."""

import numpy as np
import pytest
import tensorflow as tf

import t3f_ext as t3f
from tt_reference import TENSOR_MODES, make

RANKS = [1, 2, 2, 1]


def _setup(seed=0):
    rng = np.random.default_rng(seed)
    where, _ = make(rng, TENSOR_MODES, RANKS, np.float64)
    other, _ = make(rng, TENSOR_MODES, RANKS, np.float64)
    what, what_dense = make(rng, TENSOR_MODES, [1, 3, 2, 1], np.float64, batch=3)
    return where, other, what, what_dense


def test_projections_carry_their_point():
    where, other, what, _ = _setup()
    p1 = t3f.project(what, where)
    p2 = t3f.project_sum(what, where)
    grad = t3f.gradients(lambda x: 0.5 * t3f.flat_inner(x, x), where)
    assert p1.projection_on is not None
    assert p1.projection_on == p2.projection_on == grad.projection_on
    # The same cores are the same point; another point has another identifier.
    assert t3f.project(what, t3f.TensorTrain(where.tt_cores)).projection_on == (p1.projection_on)
    assert t3f.project(what, other).projection_on != p1.projection_on
    # Elements and batch reshapes stay in the tangent space; other ops leave it.
    assert p1[0].projection_on == p1.projection_on
    assert t3f.expand_batch_dim(p2).projection_on == p1.projection_on
    assert (p2 + p2).projection_on is None
    assert where.projection_on is None
    summed = t3f.add_n_projected([p2, grad])
    assert summed.projection_on == p1.projection_on


def test_mixing_points_raises_and_same_point_matches_dense():
    where, other, what, what_dense = _setup(1)
    p_here = t3f.project(what, where)
    p_there = t3f.project(what, other)
    with pytest.raises(ValueError, match="different points"):
        t3f.pairwise_flat_inner_projected(p_here, p_there)
    with pytest.raises(ValueError, match="different points"):
        t3f.add_n_projected([p_here, p_there])
    with pytest.raises(ValueError, match="projection_on None"):
        t3f.add_n_projected([p_here, t3f.TensorTrainBatch(p_here.tt_cores)])
    # At one point both give what the dense tensors give.
    gram = t3f.pairwise_flat_inner_projected(p_here, p_here)
    dense = t3f.full(p_here).numpy().reshape(3, -1)
    np.testing.assert_allclose(gram, dense @ dense.T, rtol=1e-10)
    del what_dense


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_identifier_is_static_inside_compiled_functions(jit_compile):
    where, other, what, _ = _setup(2)

    @tf.function(jit_compile=jit_compile)
    def same_point(what, where):
        p = t3f.project(what, where)
        return t3f.add_n_projected([p, p], coef=[1.0, 2.0])

    got = same_point(what, where)
    np.testing.assert_allclose(
        t3f.full(got), 3 * t3f.full(t3f.project(what, where)), rtol=1e-10, atol=1e-12
    )

    @tf.function(jit_compile=jit_compile)
    def two_points(what, where, other):
        return t3f.pairwise_flat_inner_projected(t3f.project(what, where), t3f.project(what, other))

    with pytest.raises(ValueError, match="different points"):
        two_points(what, where, other)

    # Projections made outside cross the boundary with their identifiers.
    @tf.function(jit_compile=jit_compile)
    def combine(a, b):
        return t3f.pairwise_flat_inner_projected(a, b)

    p_here = t3f.project(what, where)
    np.testing.assert_allclose(
        combine(p_here, p_here), t3f.pairwise_flat_inner_projected(p_here, p_here), rtol=1e-10
    )
    with pytest.raises(ValueError, match="different points"):
        combine(p_here, t3f.project(what, other))
