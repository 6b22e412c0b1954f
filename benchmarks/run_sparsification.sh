#!/usr/bin/env bash
# Runs the LeNet sparsification benchmarks (benchmarks/sparsification.py).
# TF Model Optimization 0.8.1 needs tf_keras, so its part runs from a side venv on top of this
# venv's TensorFlow (benchmarks/side_venv.py); this script creates that venv once. Results: benchmarks/results/sparsification.json.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TFMOT_VENV:-/tmp/venv-tfmot}
export TFMOT_PYTHON="$(python benchmarks/side_venv.py "$VENV" tensorflow-model-optimization==0.8.1)"
# The tfmot experiments prune to the sparsity Sparse VD reached, so they run after it.
nice -n 10 python benchmarks/sparsification.py --experiments \
  lenet_300_100_sparse_vd lenet_300_100_tfmot lenet_5_sparse_vd lenet_5_sbp lenet_5_tfmot "$@"
