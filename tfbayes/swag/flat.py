"""A model's trainable weights as one flat vector, the space SWA and SWAG work in."""

import numpy as np


class FlatWeights:
    """Maps a model's trainable variables to one flat NumPy vector and back.

    The vector concatenates ``model.trainable_variables`` in Keras's order, each
    flattened in C order; its length is ``P = size``. Its dtype is float64 when any
    trainable variable is float64, else float32 (mixed-precision models keep float32
    variables, so their flat vector is float32).

    Under ``tf.distribute`` strategies the variables are mirrored; reading gives the
    (identical) replica value and assigning sets every replica.

    Args:
      model: a built Keras model or layer.

    Raises:
      ValueError: the model has no trainable weights.
    """

    def __init__(self, model):
        variables = list(model.trainable_variables)
        if not variables:
            raise ValueError(
                f"model: expected a built model with trainable weights, got "
                f"{getattr(model, 'name', model)!r} with none (build it by "
                "calling it on data first, or unfreeze its layers)"
            )
        self.variables = variables
        self.shapes = [tuple(int(d) for d in v.shape) for v in variables]
        self.sizes = [int(np.prod(shape)) for shape in self.shapes]
        self.size = sum(self.sizes)
        self.dtype = np.dtype(
            np.float64 if any(_dtype_name(v) == "float64" for v in variables) else np.float32
        )

    def check_matches(self, shapes, what):
        """Raises ``ValueError`` unless ``shapes`` (a list of shapes) are this model's."""
        shapes = [tuple(int(d) for d in shape) for shape in shapes]
        if shapes != self.shapes:
            raise ValueError(
                f"model: expected trainable weights of shapes {shapes} to match "
                f"{what}, got {self.shapes}"
            )

    def read(self):
        """The current weights as a flat array of shape ``[P]``."""
        return np.concatenate([np.asarray(v.numpy(), self.dtype).ravel() for v in self.variables])

    def unflatten(self, flat):
        """Splits a flat ``[P]`` vector into arrays of the variables' shapes and dtypes."""
        flat = np.asarray(flat)
        if flat.shape != (self.size,):
            raise ValueError(f"flat: expected shape ({self.size},), got {flat.shape}")
        pieces = np.split(flat, np.cumsum(self.sizes)[:-1])
        return [
            piece.reshape(shape).astype(_dtype_name(v))
            for piece, shape, v in zip(pieces, self.shapes, self.variables)
        ]

    def assign(self, flat):
        """Sets the model's trainable variables to the flat vector ``flat``."""
        for variable, value in zip(self.variables, self.unflatten(flat)):
            variable.assign(value)


def _dtype_name(variable):
    dtype = variable.dtype
    return dtype if isinstance(dtype, str) else dtype.name
