"""t3f_ext: a maintained Tensor-Train core with T3F's public names.

Use it as ``import t3f_ext as t3f``.
"""
