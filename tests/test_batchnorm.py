"""The fused BatchNormalization computes what Keras' BatchNormalization computes, and saved models
do not depend on it.

Forward output, the moving statistics' update and the gradients (input, gamma, beta) are compared
with stock Keras on the same weights and inputs in training mode; inference is Keras' bit for bit; a model trained
with the fused layer saves a best.h5 that plain ``keras.models.load_model`` reads back to the same
predictions.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

pytestmark = pytest.mark.tf
tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from crackops.config import TrainConfig  # noqa: E402
from crackops.ml.batchnorm import FusedBatchNormalization, stock_copy  # noqa: E402


@pytest.fixture
def float32_policy():
    before = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy(before)


def pair(momentum=0.8, channels=5):
    """A stock and a fused layer with the same (non-trivial) weights."""
    stock = keras.layers.BatchNormalization(momentum=momentum)
    fused = FusedBatchNormalization(momentum=momentum)
    shape = (None, 9, 11, channels)
    stock.build(shape)
    fused.build(shape)
    rng = np.random.default_rng(3)
    weights = [rng.uniform(0.5, 2.0, channels), rng.normal(0, 1, channels),
               rng.normal(0, 1, channels), rng.uniform(0.5, 3.0, channels)]
    stock.set_weights([w.astype("float32") for w in weights])
    fused.set_weights([w.astype("float32") for w in weights])
    return stock, fused


def batch(channels=5, n=6):
    rng = np.random.default_rng(7)
    # per-channel offsets and scales far from (0, 1), so a wrong mean or variance shows
    x = rng.normal(0, 1, (n, 9, 11, channels)) * rng.uniform(0.5, 4, channels) + rng.normal(3, 2, channels)
    return tf.constant(x.astype("float32"))


def test_training_forward_and_moving_statistics_match_keras(float32_policy):
    stock, fused = pair()
    x = batch()
    y_stock = stock(x, training=True)
    y_fused = fused(x, training=True)
    np.testing.assert_allclose(y_fused.numpy(), y_stock.numpy(), rtol=1e-4, atol=1e-4)
    # the output is normalised per channel: a no-op layer would fail this
    assert not np.allclose(y_fused.numpy(), x.numpy(), atol=0.1)
    np.testing.assert_allclose(fused.moving_mean.numpy(), stock.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance.numpy(), stock.moving_variance.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(fused.moving_variance.numpy(), pair()[1].moving_variance.numpy())  # it did update


def test_gradients_match_keras(float32_policy):
    stock, fused = pair()
    x = batch()
    upstream = tf.constant(np.random.default_rng(1).normal(0, 1, x.shape).astype("float32"))
    grads = []
    for layer in (stock, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) * upstream)
        grads.append(tape.gradient(loss, [x, layer.gamma.value, layer.beta.value]))
    for g_stock, g_fused in zip(*grads):
        assert g_fused is not None
        np.testing.assert_allclose(g_fused.numpy(), g_stock.numpy(), rtol=1e-3, atol=1e-4)


def test_inference_is_keras_bit_for_bit(float32_policy):
    """Validation and prediction run Keras' own ops: the saved stock model predicts identically."""
    stock, fused = pair()
    x = batch()
    np.testing.assert_array_equal(fused(x, training=False).numpy(), stock(x, training=False).numpy())
    before = fused.moving_mean.numpy().copy()
    fused(x, training=False)
    np.testing.assert_array_equal(fused.moving_mean.numpy(), before)


def test_bfloat16_output_close_to_float32_reference():
    stock, _ = pair()
    before = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        fused = FusedBatchNormalization(momentum=0.8)
        fused.build((None, 9, 11, 5))
        fused.set_weights(stock.get_weights())
        x = batch()
        y = fused(tf.cast(x, tf.bfloat16), training=True)
    finally:
        keras.mixed_precision.set_global_policy(before)
    assert y.dtype == tf.bfloat16
    ref = stock(x, training=True).numpy()
    np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), ref, atol=0.05 * np.abs(ref).max())


def test_non_image_input_falls_back_to_keras(float32_policy):
    stock = keras.layers.BatchNormalization(momentum=0.5)
    fused = FusedBatchNormalization(momentum=0.5)
    x = tf.constant(np.random.default_rng(0).normal(2, 3, (16, 4)).astype("float32"))
    np.testing.assert_allclose(fused(x, training=True).numpy(), stock(x, training=True).numpy(), rtol=1e-5, atol=1e-5)


def test_saved_model_uses_stock_layers_and_predicts_the_same(tmp_path, float32_policy):
    from crackops.ml.model import build_model

    model = build_model(TrainConfig(image_size=40), 0.9)
    assert sum(isinstance(layer, FusedBatchNormalization) for layer in model.layers) == 3
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (24, 40, 40, 3)).astype("float32")
    y = rng.integers(0, 2, 24).astype("float32")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # moves weights, statistics and Adam's state

    copy = stock_copy(model)
    assert not any(isinstance(layer, FusedBatchNormalization) for layer in copy.layers)
    path = tmp_path / "best.h5"
    copy.save(str(path))
    with h5py.File(path) as f:
        config = f.attrs["model_config"]
    assert "FusedBatchNormalization" not in str(config) and "BatchNormalization" in str(config)

    loaded = keras.models.load_model(str(path))  # plain Keras, no custom objects
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer is not None and int(loaded.optimizer.iterations.numpy()) == 3


def test_fused_batchnorm_can_be_turned_off():
    from crackops.ml.model import build_model

    model = build_model(TrainConfig(image_size=40, fused_batchnorm=False), 0.9)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 3 and not any(isinstance(layer, FusedBatchNormalization) for layer in bns)
    assert stock_copy(model) is model
