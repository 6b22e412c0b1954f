"""tfbayes: Bayesian methods of deep learning for TensorFlow / Keras 3.

Subpackages:
  * ``tfbayes.layers``: Keras 3 layers for Bayesian sparsification, dense, convolutional,
    embedding and recurrent (LSTM, GRU).
  * ``tfbayes.sparsity``: sparsity reports, thresholds and ``compress`` to plain Keras models.
  * ``tfbayes.distributions``: TFP distributions with implicit reparameterization
    gradients, and the TRIP prior.
  * ``tfbayes.swag``: SWA, SWAG, FGE and mode-connecting curves for Keras models;
    ``tfbayes.metrics``: NLL, calibration, Brier score and OOD AUROC.
  * ``tfbayes.models``: whole models built from the parts: VAEAC.
  * ``tfbayes.datasets``: loaders for the real data used by the tutorials and benchmarks.
"""

from tfbayes._startup import import_tensorflow_quietly

import_tensorflow_quietly()

__version__ = "0.1.0"
