"""BatchNormalization on TensorFlow's fused kernel, and a stock-Keras copy of a model for saving.

Keras 3 computes BatchNormalization from separate ops (a cast to float32, ``tf.nn.moments``,
``tf.nn.batch_normalization``, a cast back), each a full pass over the activations, forward and
backward. ``tf.keras`` (Keras 2) used TensorFlow's fused kernel (``FusedBatchNormV3``, oneDNN on
CPU), one pass each way. On the seed model, whose first block's activations are 32 x 148 x 148 x 32
per batch, that difference dominates a training step on CPU (measured on 2 AVX-512 cores, batch 32,
150 px: 0.52 -> 0.33 s per step in float32, 0.41 -> 0.18 s with bfloat16). Keras' own issue:
keras-team/keras-core#225 "BatchNorm is slow".

``FusedBatchNormalization`` is a drop-in subclass: same weights, same config, same maths (the
moving variance is updated with the biased batch variance, as Keras does). It uses the fused kernel
in training, for 4-D channels-last inputs without a mask on the TensorFlow backend, and defers to
Keras otherwise; inference (validation, evaluation, prediction) always runs Keras' ops, so the
training's own predictions are exactly those of the saved model.

Saved models must not depend on crackops: ``stock_copy(model)`` rebuilds the network from stock
Keras layers with the same weights and optimizer, so ``best.h5`` loads with plain
``keras.models.load_model``.
"""

from __future__ import annotations

import keras
from keras import layers


class FusedBatchNormalization(layers.BatchNormalization):
    def _can_fuse(self, inputs, mask) -> bool:
        return (keras.backend.backend() == "tensorflow" and mask is None and not self.renorm
                and not self.synchronized and len(inputs.shape) == 4
                and self.axis in (-1, 3) and self.center and self.scale)

    def call(self, inputs, training=None, mask=None):
        # inference runs Keras' own ops, so predictions equal those of the saved stock model
        if not (training and self.trainable) or not self._can_fuse(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = inputs if inputs.dtype in (tf.float32, tf.bfloat16, tf.float16) else tf.cast(inputs, tf.float32)
        y, mean, var = tf.compat.v1.nn.fused_batch_norm(
            x, tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32), epsilon=self.epsilon,
            data_format="NHWC", is_training=True)
        # the kernel returns the Bessel-corrected variance; Keras updates with the biased one
        n = tf.cast(tf.size(x, out_type=tf.int64) // tf.cast(tf.shape(x)[-1], tf.int64), tf.float32)
        var = var * ((n - 1.0) / n)
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + tf.cast(mean, self.moving_mean.dtype) * (1.0 - m))
        self.moving_variance.assign(
            self.moving_variance * m + tf.cast(var, self.moving_variance.dtype) * (1.0 - m))
        return tf.cast(y, self.compute_dtype)


def stock_copy(model):
    """The same network from stock Keras layers, sharing weights' values and the optimizer."""

    def clone(layer):
        cls = layers.BatchNormalization if isinstance(layer, FusedBatchNormalization) else layer.__class__
        return cls.from_config(layer.get_config())

    if not any(isinstance(layer, FusedBatchNormalization) for layer in model.layers):
        return model
    plain = keras.models.clone_model(model, clone_function=clone)
    plain.set_weights(model.get_weights())
    if getattr(model, "optimizer", None) is not None and model.compiled:
        plain.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"])
    return plain
