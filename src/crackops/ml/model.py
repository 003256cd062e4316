"""The seed report's CNN, every hyper-parameter from the config.

BatchNormalization runs on TensorFlow's fused kernel unless ``config.fused_batchnorm`` is off (see
``crackops.ml.batchnorm``); saved models use stock Keras layers either way.
"""

from __future__ import annotations

from crackops.config import TrainConfig


def build_model(config: TrainConfig, bn_momentum: float | None = None):
    import keras
    from keras import layers

    from crackops.ml.batchnorm import FusedBatchNormalization

    s = config.image_size
    bn = dict(momentum=bn_momentum if bn_momentum is not None else config.resolved_bn_momentum(1000))
    BatchNorm = FusedBatchNormalization if config.fused_batchnorm else layers.BatchNormalization
    model = keras.Sequential(
        [
            keras.Input(shape=(s, s, 3)),
            layers.Rescaling(1.0 / 255),
            layers.Conv2D(32, 3, activation="relu"),
            BatchNorm(**bn),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            BatchNorm(**bn),
            layers.MaxPooling2D(),
            layers.Conv2D(128, 3, activation="relu"),
            BatchNorm(**bn),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(config.dense_units, activation="relu"),
            layers.Dropout(config.dropout),
            # float32 output keeps the sigmoid and the loss exact under mixed precision
            layers.Dense(1, activation="sigmoid", dtype="float32"),
        ],
        name="cnn_crack",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model
