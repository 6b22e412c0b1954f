"""A Sparse Variational Dropout embedding, with optional pruning of whole words.

Every entry of the ``[input_dim, output_dim]`` embedding matrix ``E`` has the
Sparse-VD posterior ``N(theta, sigma^2)`` (Molchanov et al. 2017, arXiv
1701.05369). With ``vocabulary_pruning=True`` each word ``v`` also gets a
multiplicative group variable ``z_v ~ N(mu_v, sigma_v^2)`` with the same prior
(Chirkova, Lobacheva, Vetrov 2018, arXiv 1810.10927, Sec. 3):

    embedding(v) = z_v * E[v, :].

A word whose ``z_v`` is pruned (``log alpha_v >= threshold``) contributes a zero
vector: it is dropped from the vocabulary. As in the recurrent layers, the
noise is shared across timesteps: ``E`` is sampled once per mini-batch and
``z`` once per sequence, so a word has the same noisy embedding at every
position of a sequence. At inference the layer is deterministic,
``embedding(v) = [z_v kept] mu_v * (theta * [log alpha < threshold])[v, :]``.
"""

import keras
import numpy as np
from keras import ops

from tfbayes.layers.shared_noise import per_sequence_group, shared_weight
from tfbayes.layers.sparse_vd import SparseVDLayer, check_positive_int, check_unsupported


@keras.saving.register_keras_serializable(package="tfbayes")
class SparseVDEmbedding(SparseVDLayer):
    """Drop-in for ``keras.layers.Embedding`` with sparse weights and words.

    The variational weights are ``embeddings`` ``[input_dim, output_dim]`` and,
    with ``vocabulary_pruning``, ``vocabulary_group`` ``[input_dim]`` (means
    initialised to 1), each with its ``*_log_sigma2``; the KL sums over both.

    Args:
      input_dim: the vocabulary size, a positive int (ids lie in ``[0, input_dim)``).
      output_dim: the embedding size, a positive int.
      embeddings_initializer: initializer of ``theta`` (default ``"uniform"``, as Keras).
      embeddings_regularizer, embeddings_constraint: as in ``keras.layers.Embedding``,
        acting on ``theta``.
      mask_zero: as in ``keras.layers.Embedding``: id 0 is padding and masked.
      weights: as in ``keras.layers.Embedding``: ``[table]``, the initial ``theta``.
      lora_rank, lora_alpha, quantization_config: accepted for signature
        compatibility; must be None.
      vocabulary_pruning: learn one group variable per word, so that whole
        words are dropped (default False).
      threshold, prior, log_sigma2_initializer, seed, num_examples: see
        :class:`~tfbayes.layers.sparse_vd.SparseVDLayer`.

    Call arguments:
      inputs: integer ids of any shape ``[batch, ...]``.
      training: sample the noise (True) or use the pruned means (False).

    Output: ``[batch, ..., output_dim]``. Cost: a gather; in training also one
    sample of ``E`` (O(input_dim * output_dim)) and, with vocabulary pruning,
    O(batch * input_dim) for the per-sequence word variables.

    Example:

    >>> layer = SparseVDEmbedding(1000, 16, vocabulary_pruning=True)
    >>> tuple(layer(np.array([[3, 5, 0]])).shape)
    (1, 3, 16)
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        embeddings_constraint=None,
        mask_zero=False,
        weights=None,
        lora_rank=None,
        lora_alpha=None,
        quantization_config=None,
        vocabulary_pruning=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_unsupported(
            lora_rank=lora_rank, lora_alpha=lora_alpha, quantization_config=quantization_config
        )
        self.input_dim = check_positive_int(input_dim, "input_dim")
        self.output_dim = check_positive_int(output_dim, "output_dim")
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = keras.constraints.get(embeddings_constraint)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self.vocabulary_pruning = bool(vocabulary_pruning)
        if weights is not None:
            table = np.asarray(weights[0] if isinstance(weights, (list, tuple)) else weights)
            if table.shape != (self.input_dim, self.output_dim):
                raise ValueError(
                    f"weights: expected [table] with table of shape "
                    f"{(self.input_dim, self.output_dim)}, got shape {table.shape}"
                )
            self.build()
            self.embeddings.assign(table)

    def build(self, input_shape=None):
        self.add_variational_weight(
            "embeddings",
            (self.input_dim, self.output_dim),
            self.embeddings_initializer,
            self.embeddings_regularizer,
            self.embeddings_constraint,
        )
        if self.vocabulary_pruning:
            self.add_variational_weight("vocabulary_group", (self.input_dim,), "ones")

    def _inference_table(self):
        """``[input_dim, output_dim]``: the pruned means, rows scaled by the kept word means.

        In the variable dtype."""
        table = self.pruned_weight("embeddings")
        if self.vocabulary_pruning:
            table = table * ops.expand_dims(self.pruned_weight("vocabulary_group"), -1)
        return table

    def call(self, inputs, training=False):
        self.add_kl_loss(training)
        if not str(inputs.dtype).startswith(("int", "uint")):
            inputs = ops.cast(inputs, "int32")
        if not training:
            return ops.take(ops.cast(self._inference_table(), self.compute_dtype), inputs, axis=0)
        outputs = ops.take(shared_weight(self, "embeddings", training), inputs, axis=0)
        if not self.vocabulary_pruning:
            return outputs
        # One draw of the word variables per sequence: row b of `words` scales sequence b.
        batch_size = ops.shape(inputs)[0]
        words = per_sequence_group(self, "vocabulary_group", batch_size, training)
        flat_ids = ops.reshape(inputs, (batch_size, -1))
        scales = ops.reshape(ops.take_along_axis(words, flat_ids, axis=1), ops.shape(inputs))
        return outputs * ops.expand_dims(scales, -1)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def word_mask(self):
        """Bool ``[input_dim]``: True for the words kept at inference.

        A word is kept when its group variable is kept (with vocabulary
        pruning) and at least one weight of its row survives.
        """
        rows = np.any(ops.convert_to_numpy(self.weight_mask("embeddings")) > 0, axis=1)
        if self.vocabulary_pruning:
            rows &= ops.convert_to_numpy(self.weight_mask("vocabulary_group")) > 0
        return rows

    def sparsity_groups(self):
        """Kept/total ``weights`` (in kept words) and ``words`` (the sparsity protocol)."""
        words = self.word_mask()
        weights = (ops.convert_to_numpy(self.weight_mask("embeddings")) > 0) & words[:, None]
        return {
            "weights": (int(weights.sum()), int(weights.size)),
            "words": (int(words.sum()), int(words.size)),
        }

    def plain_equivalent(self):
        """A built ``keras.layers.Embedding`` holding the inference table (the sparsity protocol).

        :func:`tfbayes.sparsity.compress` then keeps only the rows of kept words
        and the columns the next layer reads (the ``Embedding`` rule of
        :mod:`tfbayes.sparsity`).
        """
        plain = keras.layers.Embedding(
            self.input_dim,
            self.output_dim,
            mask_zero=self.mask_zero,
            dtype=self.dtype_policy,
            name=self.name,
        )
        plain.build()
        plain.set_weights([ops.convert_to_numpy(self._inference_table())])
        return plain

    def get_config(self):
        config = super().get_config()
        config.update(
            input_dim=self.input_dim,
            output_dim=self.output_dim,
            embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer),
            embeddings_regularizer=keras.regularizers.serialize(self.embeddings_regularizer),
            embeddings_constraint=keras.constraints.serialize(self.embeddings_constraint),
            mask_zero=self.mask_zero,
            vocabulary_pruning=self.vocabulary_pruning,
        )
        return config
