"""Monte Carlo gradient estimators of ``grad_theta E_{p(x; theta)}[f(x)]``.

Mohamed, Rosca, Figurnov, Mnih 2020, "Monte Carlo Gradient Estimation in
Machine Learning", arXiv 1906.10652. Each estimator is called as
``estimator(f, dist, num_samples, seed=..., **options)`` and returns a scalar
surrogate: its value is the Monte Carlo estimate of ``E f``, its gradient
(under ``tf.GradientTape``, ``tf.function`` and ``jit_compile=True``) is the
estimator's gradient with respect to the distribution's parameters and to the
variables ``f`` uses.

* ``score_function``: any distribution; baselines (``MovingAverageBaseline``,
  ``"leave_one_out"``, a callable) and control variates.
* ``pathwise``: fully reparameterized distributions.
* ``measure_valued``: weak derivatives for Normal, Exponential, Gamma,
  Poisson, Bernoulli, Categorical.
* ``delta_method`` and the ``"optimal"`` coefficient: control variates.
* ``gradient_variance``: mean, variance and cost of an estimator's gradient.
* ``gaussian_estimator_variances``: the exact per-sample variances of the score-function,
  pathwise and measure-valued estimators for a Gaussian, by quadrature (needs SciPy).
"""

from tfbayes.estimators.baselines import MovingAverageBaseline
from tfbayes.estimators.control_variates import ControlVariate, delta_method
from tfbayes.estimators.diagnostics import GradientStatistics, gradient_variance
from tfbayes.estimators.measure_valued import measure_valued
from tfbayes.estimators.parameters import distribution_parameters
from tfbayes.estimators.pathwise import pathwise
from tfbayes.estimators.quadrature import gaussian_estimator_variances
from tfbayes.estimators.score_function import score_function

__all__ = [
    "score_function",
    "pathwise",
    "measure_valued",
    "MovingAverageBaseline",
    "delta_method",
    "ControlVariate",
    "gradient_variance",
    "GradientStatistics",
    "gaussian_estimator_variances",
    "distribution_parameters",
]
