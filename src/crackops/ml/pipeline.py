"""tf.data input pipelines from (path, label) lists: decode each image once, cache, prefetch.

Images are resized exactly as ``keras.utils.image_dataset_from_directory`` does (bilinear, no crop)
and cached as uint8 (4x less memory than float32: 32,000 images at 150 px take 2.2 GB); the model's
own ``Rescaling(1/255)`` layer does the scaling, so prediction needs no separate preprocessing.
"""

from __future__ import annotations

from typing import Sequence


def decode_resize(path, image_size: int):
    import tensorflow as tf

    raw = tf.io.read_file(path)
    img = tf.io.decode_image(raw, channels=3, expand_animations=False)
    img = tf.image.resize(img, (image_size, image_size), method="bilinear")
    img.set_shape((image_size, image_size, 3))
    return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)


def make_dataset(items: Sequence[tuple[str, int]], image_size: int, batch_size: int, *,
                 shuffle: bool = False, seed: int = 0, cache: bool = True):
    import tensorflow as tf

    AUTOTUNE = tf.data.AUTOTUNE
    paths = [p for p, _ in items]
    labels = [float(y) for _, y in items]
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    ds = ds.map(lambda p, y: (decode_resize(p, image_size), y), num_parallel_calls=AUTOTUNE,
                deterministic=True)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(min(len(items), 10_000), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)
