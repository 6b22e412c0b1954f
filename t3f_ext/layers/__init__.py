"""Keras 3 Tensor-Train layers built on the t3f_ext core.

* `TTDense` (Novikov et al. 2015): Dense with a TT-matrix kernel.
* `TTConv2D` (Garipov et al. 2016): Conv2D with a spatial core plus a TT over
  the input and output channels.
* `TTEmbedding` (Hrinchuk et al. 2019): Embedding whose table is a TT-matrix,
  looked up without materializing it.
* `from_dense` / `compress_model`: TT-SVD of trained Dense / Conv2D /
  Embedding layers into these layers, ready for fine-tuning.
"""

from t3f_ext.layers.tt_dense import TTDense
from t3f_ext.layers.tt_conv import TTConv2D
from t3f_ext.layers.tt_embedding import TTEmbedding
from t3f_ext.layers.compression import compress_model, from_dense
