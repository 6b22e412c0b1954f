"""t3f_ext: a maintained Tensor-Train core with T3F's public names.

Use it as ``import t3f_ext as t3f``: the flat names (``t3f.full``,
``t3f.matmul``, ``t3f.to_tt_matrix``, ...) and the submodules
(``t3f.ops``, ``t3f.decompositions``, ``t3f.kronecker``, ...) are those of
T3F 1.2.0, re-implemented for TF 2 / Keras 3 / NumPy 2.
"""

import tfbayes  # noqa: F401  (imports TensorFlow without its C++ start-up notices)

from t3f_ext.tensor_train_base import TensorTrainBase
from t3f_ext.tensor_train import TensorTrain
from t3f_ext.tensor_train_batch import TensorTrainBatch

from t3f_ext.ops import add
from t3f_ext.ops import bilinear_form
from t3f_ext.ops import bilinear_form_two_mat
from t3f_ext.ops import cast
from t3f_ext.ops import flat_inner
from t3f_ext.ops import frobenius_norm
from t3f_ext.ops import frobenius_norm_squared
from t3f_ext.ops import full
from t3f_ext.ops import gather_nd
from t3f_ext.ops import matmul
from t3f_ext.ops import multiply
from t3f_ext.ops import quadratic_form
from t3f_ext.ops import renormalize_tt_cores
from t3f_ext.ops import transpose

from t3f_ext.decompositions import orthogonalize_tt_cores
from t3f_ext.decompositions import round  # pylint: disable=redefined-builtin
from t3f_ext.decompositions import to_tt_matrix
from t3f_ext.decompositions import to_tt_tensor

from t3f_ext.initializers import eye
from t3f_ext.initializers import glorot_initializer
from t3f_ext.initializers import he_initializer
from t3f_ext.initializers import lecun_initializer
from t3f_ext.initializers import matrix_batch_with_random_cores
from t3f_ext.initializers import matrix_ones
from t3f_ext.initializers import matrix_with_random_cores
from t3f_ext.initializers import matrix_zeros
from t3f_ext.initializers import ones_like
from t3f_ext.initializers import ones_like_tt
from t3f_ext.initializers import random_matrix
from t3f_ext.initializers import random_matrix_batch
from t3f_ext.initializers import random_tensor
from t3f_ext.initializers import random_tensor_batch
from t3f_ext.initializers import tensor_batch_with_random_cores
from t3f_ext.initializers import tensor_ones
from t3f_ext.initializers import tensor_with_random_cores
from t3f_ext.initializers import tensor_zeros
from t3f_ext.initializers import zeros_like
from t3f_ext.initializers import zeros_like_tt

from t3f_ext.shapes import batch_size
from t3f_ext.shapes import clean_raw_shape
from t3f_ext.shapes import expand_batch_dim
from t3f_ext.shapes import is_batch_broadcasting_possible
from t3f_ext.shapes import lazy_batch_size
from t3f_ext.shapes import lazy_raw_shape
from t3f_ext.shapes import lazy_shape
from t3f_ext.shapes import lazy_tt_ranks
from t3f_ext.shapes import raw_shape
from t3f_ext.shapes import shape
from t3f_ext.shapes import squeeze_batch_dim
from t3f_ext.shapes import tt_ranks

from t3f_ext.batch_ops import concat_along_batch_dim
from t3f_ext.batch_ops import gram_matrix
from t3f_ext.batch_ops import multiply_along_batch_dim
from t3f_ext.batch_ops import pairwise_flat_inner

from t3f_ext.regularizers import cores_regularizer
from t3f_ext.regularizers import l2_regularizer

from t3f_ext.riemannian import add_n_projected
from t3f_ext.riemannian import deltas_to_tangent_space
from t3f_ext.riemannian import pairwise_flat_inner_projected
from t3f_ext.riemannian import project
from t3f_ext.riemannian import project_matmul
from t3f_ext.riemannian import project_sum
from t3f_ext.riemannian import tangent_space_to_deltas

from t3f_ext.autodiff import gradients
from t3f_ext.autodiff import hessian_vector_product

from t3f_ext.variables import TensorTrainVariable
from t3f_ext.variables import assign
from t3f_ext.variables import get_variable

from t3f_ext import approximate
from t3f_ext import autodiff
from t3f_ext import batch_ops
from t3f_ext import decompositions
from t3f_ext import initializers
from t3f_ext import kronecker
from t3f_ext import ops
from t3f_ext import regularizers
from t3f_ext import riemannian
from t3f_ext import shapes
from t3f_ext import utils
from t3f_ext import variables
from t3f_ext import layers  # Keras 3 TT layers; they need the core above
from t3f_ext import nn  # T3F's KerasDense, a TTDense
