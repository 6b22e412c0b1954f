"""Per-weight KL divergences of the sparsifying priors.

Every function here is elementwise: it takes a tensor of ``log alpha`` values,
one per weight (or per group variable), and returns a tensor of the same shape.
A layer sums the result over its weights.

For a weight with posterior ``q(w) = N(theta, sigma^2)`` the dropout rate is
``alpha = sigma^2 / theta^2`` (the additive reparameterization of Molchanov et
al. 2017, arXiv 1701.05369, Sec. 4.3), so ``log alpha = log sigma^2 - log theta^2``.
"""

import tensorflow as tf

# Molchanov, Ashukha, Vetrov 2017, eq. (14): the fitted constants of the
# approximation -KL ~ k1 sigmoid(k2 + k3 log alpha) - 0.5 log(1 + 1/alpha) + C.
_K1, _K2, _K3 = 0.63576, 1.87320, 1.48695

LOG_ALPHA_CLIP = 8.0
"""``log alpha`` is clipped to [-8, 8], as in the reference implementation."""


def log_alpha(theta, log_sigma2, clip=LOG_ALPHA_CLIP):
    """``log alpha = log sigma^2 - log theta^2``, clipped to ``[-clip, clip]``.

    Args:
      theta: the posterior means, any shape.
      log_sigma2: the posterior log-variances, the same shape.
      clip: a positive float; the result lies in ``[-clip, clip]``.

    Returns:
      A tensor of the common shape and dtype. Cost: O(#weights).
    """
    tiny = tf.constant(1e-8, dtype=theta.dtype)
    return tf.clip_by_value(log_sigma2 - tf.math.log(tf.square(theta) + tiny), -clip, clip)


def log_uniform_kl(log_alpha_value):
    """KL(q || log-uniform prior) per weight, Molchanov et al. 2017 eq. (14).

    ``KL ~ k1 - k1 sigmoid(k2 + k3 log alpha) + 0.5 log(1 + 1/alpha)``. The true
    KL is defined only up to an additive constant (the prior is improper); the
    constant here makes the KL tend to 0 as ``alpha -> inf`` (a weight that is
    pure noise costs nothing). The maximum error of the approximation is about
    0.01 nats over all ``log alpha``.
    """
    return (
        _K1 - _K1 * tf.sigmoid(_K2 + _K3 * log_alpha_value) + 0.5 * tf.nn.softplus(-log_alpha_value)
    )


def ard_kl(log_alpha_value):
    """KL(q || N(0, lambda^2)) per weight, with the ARD prior variance at its optimum.

    Kharitonov, Molchanov, Vetrov 2018 (arXiv 1811.00596): the empirical-Bayes
    prior variance ``lambda^2 = theta^2 + sigma^2`` is available in closed form,
    and the KL then equals ``0.5 log(1 + 1/alpha)`` exactly.
    """
    return 0.5 * tf.nn.softplus(-log_alpha_value)


PRIORS = {"log_uniform": log_uniform_kl, "ard": ard_kl}
"""The per-weight KL of each prior a sparsifying layer accepts as ``prior=``."""


def get_prior_kl(prior):
    """Returns the per-weight KL function for ``prior`` ('log_uniform' or 'ard')."""
    if prior not in PRIORS:
        raise ValueError(f"prior: expected one of {sorted(PRIORS)}, got {prior!r}")
    return PRIORS[prior]
