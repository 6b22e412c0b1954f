"""Keras 3 layers for Bayesian sparsification."""
