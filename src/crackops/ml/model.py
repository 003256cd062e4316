"""The seed report's CNN, every hyper-parameter from the config.

BatchNormalization runs on TensorFlow's fused kernel unless ``config.fused_batchnorm`` is off (see
``crackops.ml.batchnorm``); saved models use stock Keras layers either way.
"""

from __future__ import annotations

from crackops.config import TrainConfig


def learning_rate(config: TrainConfig, steps_per_epoch: int):
    """The optimizer's learning rate: a constant (the seed's; ReduceLROnPlateau may halve it) or,
    with ``lr_schedule="cosine"``, a linear warm-up over ``warmup_epochs`` then a cosine decay to 0
    at the end of the last epoch, so the final epochs settle instead of swinging."""
    import keras

    if config.lr_schedule != "cosine":
        return config.learning_rate
    total = max(1, int(config.epochs * steps_per_epoch))
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    if warmup <= 0:
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=total, alpha=0.0)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, total - warmup), alpha=0.0, warmup_target=config.learning_rate,
        warmup_steps=warmup)


def build_model(config: TrainConfig, bn_momentum: float | None = None, steps_per_epoch: int = 1000):
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
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate(config, steps_per_epoch)),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model
