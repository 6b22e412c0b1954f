"""Exact per-sample variances of the Gaussian gradient estimators, by numerical quadrature.

For ``x = mu + sigma * eps``, ``eps ~ N(0, 1)``, and a test function ``h``, the single-sample
estimators of ``d/d mu E h(x)`` and ``d/d sigma E h(x)`` (Mohamed et al. 2020, arXiv 1906.10652,
Sec. 3, Fig. 2-3) are:

* score function: ``(h(x) + R) * s(eps)`` with the scores ``s = eps / sigma`` and
  ``(eps^2 - 1) / sigma``; ``R`` is the sum of the other terms of ``f`` (independent of ``x``, with
  the given mean and second moment), which adds to the score function's noise only;
* pathwise: ``h'(x)`` and ``h'(x) * eps``;
* measure-valued (coupled, as :func:`tfbayes.estimators.measure_valued` draws them): for ``mu``,
  ``(h(mu + sigma r) - h(mu - sigma r)) / (sigma sqrt(2 pi))`` with a shared Rayleigh ``r``; for
  ``sigma``, ``(h(mu + sigma m) - h(mu + sigma m u)) / sigma`` with a double-sided Maxwell ``m`` and
  ``u ~ U(0, 1)`` (``m u`` is a standard normal);
* with ``d2h``, the score function with the delta-method control variate (second-order Taylor
  expansion of ``h`` at ``mu``) and the oracle coefficient: ``Var g_f - Cov(g_f, g_h)^2 / Var g_h``.

This is the reference that :func:`tfbayes.estimators.gradient_variance`'s Monte Carlo estimates
are checked against. It needs SciPy.
"""

import math

_LIMIT = 12.0  # the integrals run over |eps| <= 12: the normal tail beyond is below 1e-32


def _normal_expectation(fn):
    """``E fn(eps)`` for a standard normal ``eps``."""
    import scipy.integrate

    def integrand(e):
        return fn(e) * math.exp(-0.5 * e * e) / math.sqrt(2 * math.pi)

    return scipy.integrate.quad(integrand, -_LIMIT, _LIMIT, epsabs=1e-13, limit=200)[0]


def _variance(second_moment, mean):
    """``E X^2 - (E X)^2``, never below 0 (the difference of two rounded integrals can be)."""
    return max(second_moment - mean**2, 0.0)


def _normal_variance(fn):
    return _variance(_normal_expectation(lambda e: fn(e) ** 2), _normal_expectation(fn))


def _rayleigh_variance(fn):
    """``Var fn(r)`` for a Rayleigh ``r`` (density ``r exp(-r^2 / 2)``)."""
    import scipy.integrate

    def expect(g):
        return scipy.integrate.quad(
            lambda r: g(r) * r * math.exp(-0.5 * r * r), 0, _LIMIT, epsabs=1e-13, limit=200
        )[0]

    return _variance(expect(lambda r: fn(r) ** 2), expect(fn))


def _maxwell_uniform_variance(fn):
    """``Var fn(m, u)`` for a double-sided Maxwell ``m`` (density ``m^2 N(m; 0, 1)``) and
    ``u ~ U(0, 1)``."""
    import scipy.integrate

    def expect(g):
        return scipy.integrate.dblquad(
            lambda u, m: g(m, u) * m * m * math.exp(-0.5 * m * m) / math.sqrt(2 * math.pi),
            -_LIMIT,
            _LIMIT,
            0,
            1,
            epsabs=1e-11,
        )[0]

    return _variance(expect(lambda m, u: fn(m, u) ** 2), expect(fn))


def gaussian_estimator_variances(
    h, dh, loc, scale, d2h=None, other_mean=0.0, other_second_moment=0.0
):
    """Per-sample variances of the estimators of the gradient of ``E h(x)``, ``x ~ N(loc, scale^2)``.

    Args:
      h: the test function, a Python function of one float.
      dh: its derivative.
      loc: ``mu``, a float.
      scale: ``sigma``, a positive float.
      d2h: its second derivative; when given, the result also has ``"score_function+delta"``.
      other_mean: the mean of ``R``, the rest of ``f = h(x) + R`` (see the module docstring).
      other_second_moment: ``E R^2``.

    Returns:
      ``{estimator: (variance of the d/d loc estimate, variance of the d/d scale estimate)}`` for
      ``"score_function"``, ``"pathwise"`` and ``"measure_valued"`` (and
      ``"score_function+delta"``): the variance of one sample's estimate, i.e. ``N`` times that of
      an ``N``-sample mean.

    Cost: a few dozen adaptive one-dimensional integrals and two two-dimensional ones.

    Example (``h(x) = x``: the pathwise estimates are 1 and ``eps``):

    >>> variances = gaussian_estimator_variances(lambda x: x, lambda x: 1.0, loc=0.0, scale=1.0)
    >>> tuple(round(v, 6) for v in variances["pathwise"])
    (0.0, 1.0)
    """
    if not scale > 0:
        raise ValueError(f"scale: expected a positive float, got {scale!r}")

    def x(e):
        return loc + scale * e

    scores = (lambda e: e / scale, lambda e: (e * e - 1) / scale)
    score_function = []
    for s in scores:
        # E[(h + R)^2 s^2] - (E h s)^2; R is independent of eps and E s = 0.
        second = (
            _normal_expectation(lambda e, s=s: (h(x(e)) * s(e)) ** 2)
            + 2 * other_mean * _normal_expectation(lambda e, s=s: h(x(e)) * s(e) ** 2)
            + other_second_moment * _normal_expectation(lambda e, s=s: s(e) ** 2)
        )
        score_function.append(_variance(second, _normal_expectation(lambda e, s=s: h(x(e)) * s(e))))
    out = {
        "score_function": tuple(score_function),
        "pathwise": (
            _normal_variance(lambda e: dh(x(e))),
            _normal_variance(lambda e: dh(x(e)) * e),
        ),
        "measure_valued": (
            _rayleigh_variance(
                lambda r: (
                    (h(loc + scale * r) - h(loc - scale * r)) / (scale * math.sqrt(2 * math.pi))
                )
            ),
            _maxwell_uniform_variance(
                lambda m, u: (h(loc + scale * m) - h(loc + scale * m * u)) / scale
            ),
        ),
    }
    if d2h is not None:

        def taylor(e):
            return h(loc) + dh(loc) * scale * e + 0.5 * d2h(loc) * (scale * e) ** 2

        controlled = []
        for s in scores:

            def g_f(e, s=s):
                return h(x(e)) * s(e)

            def g_h(e, s=s):
                return taylor(e) * s(e)

            covariance = _normal_expectation(lambda e: g_f(e) * g_h(e)) - _normal_expectation(
                g_f
            ) * _normal_expectation(g_h)
            variance_h = _normal_variance(g_h)
            explained = covariance**2 / variance_h if variance_h > 1e-300 else 0.0
            controlled.append(max(_normal_variance(g_f) - explained, 0.0))
        out["score_function+delta"] = tuple(controlled)
    return out
