"""Running moments of a sequence of weight vectors, shared by SWA and SWAG."""

import numpy as np


class RunningMoments:
    """Mean, centred second moment and last-K deviations of vectors ``w_1, w_2, ...``.

    After ``n`` updates:

    * ``mean = (1/n) sum_i w_i`` (SWA's average);
    * ``variance = max(M2 / n, floor)``, the biased per-coordinate variance, where ``M2``
      is accumulated by Welford's update ``M2 += (n-1)/n * (w_n - mean_{n-1})^2``, a sum of
      non-negative terms. ``E[w^2] - E[w]^2`` is never formed: in float32 it cancels
      catastrophically and can come out negative. ``second_moment()`` gives ``E[w^2]``;
    * the deviation matrix (SWAG's ``D``): row ``i`` is ``w_i - mean_i``, the vector
      minus the running mean *including* it (as in Maddox et al. 2019), for the last
      ``min(n, max_rank)`` updates, oldest first.

    Memory: ``(max_rank + 2) * P`` numbers (``P + 1`` rows of ``P`` with ``track_variance``
    off and ``max_rank = 0``), in ``dtype``. Cost of one update: O(P).

    Args:
      size: the vector length ``P``.
      dtype: float32 or float64.
      track_variance: whether to accumulate ``M2``.
      max_rank: how many recent deviations to keep (0: none).
    """

    def __init__(self, size, dtype=np.float32, track_variance=True, max_rank=0):
        self.dtype = np.dtype(dtype)
        self.count = 0
        self.mean = np.zeros(size, self.dtype)
        self.m2 = np.zeros(size, self.dtype) if track_variance else None
        self.max_rank = max_rank
        self._ring = np.zeros((max_rank, size), self.dtype)

    @property
    def size(self):
        return self.mean.shape[0]

    def update(self, w):
        """Adds the vector ``w`` (shape ``[P]``)."""
        w = np.asarray(w, self.dtype)
        n = self.count + 1
        delta = w - self.mean
        self.mean += delta / self.dtype.type(n)
        if self.m2 is not None:
            self.m2 += delta * delta * self.dtype.type((n - 1) / n)
        if self.max_rank:
            self._ring[self.count % self.max_rank] = w - self.mean
        self.count = n

    def variance(self, floor=0.0):
        """``max(M2 / n, floor)``, shape ``[P]``; never negative or NaN once ``n >= 1``."""
        if self.m2 is None:
            raise ValueError("variance: these moments were collected without the variance")
        return np.maximum(self.m2 / self.dtype.type(max(self.count, 1)), self.dtype.type(floor))

    def second_moment(self):
        """``(1/n) sum_i w_i^2``, shape ``[P]``."""
        return self.variance() + self.mean * self.mean

    def deviations(self):
        """The deviation matrix, shape ``[min(n, max_rank), P]``, oldest row first."""
        k = min(self.count, self.max_rank)
        order = (np.arange(self.count - k, self.count) % self.max_rank) if k else []
        return self._ring[order]

    def state(self):
        """The collected state as a dict of NumPy arrays (see :meth:`from_state`)."""
        state = {
            "count": np.asarray(self.count),
            "mean": self.mean,
            "max_rank": np.asarray(self.max_rank),
            "deviations": self.deviations(),
        }
        if self.m2 is not None:
            state["m2"] = self.m2
        return state

    @classmethod
    def from_state(cls, state):
        """Rebuilds the moments from :meth:`state`'s dict; updates continue from there."""
        mean = np.asarray(state["mean"])
        moments = cls(mean.shape[0], mean.dtype, "m2" in state, int(state["max_rank"]))
        moments.count = int(state["count"])
        moments.mean[...] = mean
        if moments.m2 is not None:
            moments.m2[...] = state["m2"]
        deviations = np.asarray(state["deviations"])
        k = deviations.shape[0]
        if k:
            moments._ring[(np.arange(moments.count - k, moments.count) % moments.max_rank)] = (
                deviations
            )
        return moments
