"""Keras 3 Tensor-Train layers built on the t3f_ext core."""
