"""tfbayes: Bayesian methods of deep learning for TensorFlow / Keras 3.

Subpackages:
  * ``tfbayes.layers``: Keras 3 layers for Bayesian sparsification.
  * ``tfbayes.distributions``: TFP distributions with implicit reparameterization
    gradients, and the TRIP prior.
  * ``tfbayes.datasets``: offline loaders for the real data used by the tutorials.
"""
from tfbayes._startup import import_tensorflow_quietly

import_tensorflow_quietly()

__version__ = "0.1.0"
