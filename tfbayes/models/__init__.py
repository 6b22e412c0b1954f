"""Whole models built from tfbayes's parts.

* :class:`VAEAC`: the Variational Autoencoder with Arbitrary Conditioning (Ivanov et al. 2019),
  for missing-value imputation and inpainting, with the mask generators it trains on.
"""

from tfbayes.models.masks import (
    ImageHalfMask,
    ImageRectangleMask,
    MaskGenerator,
    MaskMixture,
    MCARMask,
)
from tfbayes.models.mixed_features import MixedFeatures
from tfbayes.models.vaeac import VAEAC
