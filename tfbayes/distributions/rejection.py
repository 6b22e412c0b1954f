"""Vectorized rejection sampling whose retries run on compacted buffers.

A rejection sampler over an array draws one proposal per element per round and
keeps the accepted ones. Run naively, every round covers the whole array and
the rounds go on until its last element has accepted: with acceptance ``p`` that
is about ``log(n) / log(1 / (1 - p))`` rounds for ``n`` elements, e.g. 4-5 rounds
for 1e6 Gamma draws (``p > 0.95``) and 12 for 1e6 von Mises draws at
``kappa = 5`` (``p = 0.7``), almost all of them spent on elements that have
already accepted.

``rejection_sample`` instead runs the first round over the whole array, then
compacts the rejected elements, in order, into a buffer of
``size // shrink + 16`` elements (a cumulative sum gives each its slot, and one
scatter per parameter fills the buffer), runs the next round there, compacts
again, and so on for ``levels`` levels; the last buffer loops until all of its
elements have accepted, and the results are gathered back level by level. The
work is about ``n (1 + 1/shrink + 1/shrink^2 + ...)`` proposals instead of
``n`` times the number of rounds. All shapes are static given the input's, so
this compiles under XLA. A rejected element that does not fit into its buffer
(more than one in ``shrink`` rejected, which ``shrink`` is chosen to make rare)
is retried by rounds over its whole level, so the result is exact in any case.

Every element sees a sequence of independent proposals and keeps the first one
it accepts, whichever buffer slot it occupies, so the draws follow the target
law exactly; which random numbers it sees depends on the other elements'
rejections, so a seed reproduces the whole array, not one element on its own.
"""

import tensorflow as tf

__all__ = ["rejection_sample"]

MIN_BUFFER_SIZE = 16


def rejection_sample(propose, params, seed, levels, shrink, max_rounds):
    """One accepted proposal per element of 1-D ``params``.

    Args:
      propose: ``(params, seed) -> (value, accepted)``: given a tuple of 1-D
        float tensors of one size ``m`` and a ``[2]`` int32 stateless seed,
        draws one proposal per element and returns its value (1-D, size ``m``)
        and whether it is accepted (1-D bool). Buffer slots without an element
        are given parameters equal to 1 and their results are discarded, so
        ``propose`` must accept those without raising.
      params: tuple of 1-D float tensors of one size ``n``.
      seed: ``[2]`` int32 stateless seed; round ``r`` uses
        ``stateless_fold_in(seed, r)``.
      levels: number of compacted buffers (a Python int >= 0).
      shrink: each buffer holds ``size // shrink + 16`` elements of the level
        above (a Python int > 1); choose it below ``1 / rejection rate``, so
        that the rejected elements fit.
      max_rounds: bound on the number of rounds of each retry loop.

    Returns:
      1-D tensor of size ``n``, the accepted values. An element still rejected
      after ``max_rounds`` rounds keeps a rejected proposal (for the samplers
      here, a probability below ``1e-20`` per element).

    Cost: about ``n (1 + 1/shrink + ...)`` proposals plus, per level, a
    cumulative sum, one scatter per parameter and one gather, all ``O(n)``.
    """
    todo = tf.ones_like(params[0], tf.bool)
    value, _ = _sample(propose, params, todo, seed, tf.constant(0), levels, shrink, max_rounds)
    return value


def _sample(propose, params, todo, seed, round_, levels, shrink, max_rounds):
    """``(value, next round)`` for the elements of ``params`` marked ``todo``."""
    value, accepted = propose(params, _round_seed(seed, round_))
    rejected = todo & ~accepted
    round_ = round_ + 1
    if levels > 0:
        size = tf.size(rejected)
        buffer_size = size // shrink + MIN_BUFFER_SIZE
        position = tf.cumsum(tf.cast(rejected, tf.int32)) - 1
        in_buffer = rejected & (position < buffer_size)
        slot = tf.where(in_buffer, position, buffer_size)
        used = tf.range(buffer_size) < tf.reduce_sum(tf.cast(in_buffer, tf.int32))
        buffer_params = tuple(
            tf.where(
                used,
                tf.math.unsorted_segment_max(p, slot, buffer_size + 1)[:buffer_size],
                tf.ones([], p.dtype),
            )
            for p in params
        )
        buffer_value, round_ = _sample(
            propose, buffer_params, used, seed, round_, levels - 1, shrink, max_rounds
        )
        from_buffer = tf.gather(buffer_value, tf.clip_by_value(position, 0, buffer_size - 1))
        value = tf.where(in_buffer, from_buffer, value)
        rejected = rejected & ~in_buffer
    return _retry_in_place(propose, params, rejected, value, seed, round_, max_rounds)


def _retry_in_place(propose, params, rejected, value, seed, round_, max_rounds):
    """Rounds over all of ``params`` until no element is ``rejected`` (usually 0 rounds)."""
    last_round = round_ + max_rounds

    def cond(round_, value, rejected):
        return (round_ < last_round) & tf.reduce_any(rejected)

    def body(round_, value, rejected):
        new_value, accepted = propose(params, _round_seed(seed, round_))
        accepted = accepted & rejected
        return round_ + 1, tf.where(accepted, new_value, value), rejected & ~accepted

    round_, value, _ = tf.while_loop(cond, body, (round_, value, rejected))
    return value, round_


def _round_seed(seed, round_):
    return tf.random.experimental.stateless_fold_in(seed, round_, alg="philox")
