"""Keras 3 layers for Bayesian sparsification."""

from tfbayes.layers.base import BayesianLayer, KLWarmup, set_num_examples
from tfbayes.layers import kl
from tfbayes.layers.sbp import SBPDropout
from tfbayes.layers.sparse_vd import (
    SparseVDConv1D,
    SparseVDConv2D,
    SparseVDConv3D,
    SparseVDDense,
    SparseVDLayer,
    local_reparameterization,
)
from tfbayes.layers.sparse_vd_embedding import SparseVDEmbedding
from tfbayes.layers.sparse_vd_lstm import SparseVDLSTM
from tfbayes.layers.sparse_vd_lstm import SparseVDLSTMCell
from tfbayes.layers.sparse_vd_gru import SparseVDGRU, SparseVDGRUCell
from tfbayes.layers.sparse_vd_rnn import SparseVDRNN, SparseVDRNNCell
from tfbayes.layers.shared_noise import SharedNoiseRNNCell
from tfbayes.layers.trip_prior import TRIPPrior
from tfbayes.layers.adaptive_computation import (
    AdaptiveComputationBlock,
    ProbabilisticAdaptiveComputationBlock,
    ResidualUnit,
)
from tfbayes.layers.perforated_conv import (
    PerforatedConv2D,
    estimate_impact,
    perforate,
    perforated_layers,
    perforation_mask,
)
