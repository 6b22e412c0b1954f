"""TFP distributions: implicit reparameterization gradients and the TRIP prior."""
