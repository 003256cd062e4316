"""tf.data input pipelines from (path, label) lists: decode each image once, hold it in memory,
draw a full reshuffle of the training set every epoch.

Images are resized exactly as ``keras.utils.image_dataset_from_directory`` does (bilinear, no crop)
and held as uint8 (4x less memory than float32: 30,000 images at 150 px take 2.0 GB, at 96 px
0.8 GB); the model's own ``Rescaling(1/255)`` layer does the scaling, so prediction needs no
separate preprocessing.

The training order is a uniform random permutation of the *whole* training set, drawn anew each
epoch from (seed, epoch) (``epoch_batches``). A shuffle buffer smaller than the data is not enough: the split lists
images sorted by class, and with 27,000 training images a 10,000-image buffer fed whole epochs
whose first ~80 batches held no crack at all (tests/test_pipeline.py pins this).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

AUGMENT_MODES = ("off", "geometric", "full")


#: Set to 1 to leave tf.data's autotuning on (TensorFlow's default), e.g. to measure the difference
#: (benchmarks/iterator_teardown.py).
AUTOTUNE_ENV = "CRACKOPS_TF_DATA_AUTOTUNE"


def without_autotune(ds):
    """``ds`` with tf.data's autotuning off: no model thread that an iterator's deletion waits
    for (see the module's docstring); unchanged when ``CRACKOPS_TF_DATA_AUTOTUNE=1``."""
    import os

    import tensorflow as tf

    if os.environ.get(AUTOTUNE_ENV) == "1":
        return ds

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def decode_resize(path, image_size: int):
    import tensorflow as tf

    raw = tf.io.read_file(path)
    img = tf.io.decode_image(raw, channels=3, expand_animations=False)
    img = tf.image.resize(img, (image_size, image_size), method="bilinear")
    img.set_shape((image_size, image_size, 3))
    return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)


def load_images(paths: Sequence[str], image_size: int, *, progress: Callable[[int, int], None] | None = None,
                chunk: int = 256):
    """Decode and resize every image once: a uint8 array of shape (n, size, size, 3), in order."""
    import numpy as np
    import tensorflow as tf

    n = len(paths)
    out = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    if n == 0:
        return out
    ds = tf.data.Dataset.from_tensor_slices(list(paths))
    ds = ds.map(lambda p: decode_resize(p, image_size), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = without_autotune(ds.batch(chunk).prefetch(2))
    i = 0
    for batch in ds:
        b = batch.numpy()
        out[i:i + len(b)] = b
        i += len(b)
        if progress is not None:
            progress(i, n)
    return out


def _augment(x, mode: str, seed_pair):
    """Label-preserving changes for crack photos, on a float32 batch in [0, 255].

    geometric: horizontal/vertical flips and 90-degree turns (a crack is a crack at any angle).
    full: geometric plus brightness/contrast jitter and a light blur, the kind of change another
    camera or exposure brings.
    """
    import tensorflow as tf

    x = tf.image.stateless_random_flip_left_right(x, seed_pair)
    x = tf.image.stateless_random_flip_up_down(x, seed_pair + 1)
    k = tf.random.stateless_uniform((), seed_pair + 2, 0, 4, dtype=tf.int32)
    x = tf.image.rot90(x, k)  # one turn per batch: cheap, and over an epoch every angle is seen
    if mode == "full":
        n = tf.shape(x)[0]
        bright = tf.random.stateless_uniform((n, 1, 1, 1), seed_pair + 3, -25.0, 25.0)
        contrast = tf.random.stateless_uniform((n, 1, 1, 1), seed_pair + 4, 0.75, 1.25)
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = (x - mean) * contrast + mean + bright
        blur = tf.random.stateless_uniform((n, 1, 1, 1), seed_pair + 5, 0.0, 1.0) < 0.3
        k3 = tf.constant([1.0, 2.0, 1.0]) / 4.0
        kernel = tf.tile(tf.reshape(k3[:, None] * k3[None, :], (3, 3, 1, 1)), (1, 1, 3, 1))
        blurred = tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "SAME")
        x = tf.where(blur, blurred, x)
        x = tf.clip_by_value(x, 0.0, 255.0)
    return x


def epoch_batches(n: int, seed: int, batch_size: int, first_epoch: int, end_epoch: int, first_step: int = 0):
    """Index batches for epochs ``first_epoch .. end_epoch - 1`` back to back, as (epoch, batch
    number, indices). Epoch ``e`` is a uniform permutation drawn from ``(seed, e)`` alone, so a
    run resumed at epoch ``e`` sees exactly the order an uninterrupted run saw; batches never
    straddle two epochs. ``first_step``: start at that batch of ``first_epoch`` (a resume from a
    mid-epoch backup); batch numbers stay those of the whole epoch. Iterate with
    ``steps_per_epoch`` (one iterator for the whole fit)."""
    import tensorflow as tf

    def one_epoch(e):
        perm = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64),
                                                        seed=tf.stack([tf.cast(seed, tf.int64), e]))
        return (tf.data.Dataset.from_tensor_slices(perm).batch(batch_size).enumerate()
                .map(lambda i, idx: (e, i, idx)))

    stream = tf.data.Dataset.range(first_epoch, max(first_epoch, end_epoch)).flat_map(one_epoch)
    return stream.skip(first_step) if first_step else stream


def train_dataset(images, labels, batch_size: int, *, seed: int = 0, augment: str = "off",
                  epochs: tuple[int, int] = (0, 1), first_step: int = 0):
    """Batches of (float32 images in [0, 255], float32 labels) for epochs ``first .. end - 1``
    back to back (``epochs=(first, end)``), each epoch a full reshuffle whose order and
    augmentation are a function of (seed, epoch) only (``epoch_batches``), so a resumed run sees
    what an uninterrupted one saw; ``first_step`` skips that many batches of the first epoch.
    Iterate it with ``steps_per_epoch``."""
    import numpy as np
    import tensorflow as tf

    if augment not in AUGMENT_MODES:
        raise ValueError(f"augment must be one of {AUGMENT_MODES}, got {augment!r}")
    X = tf.convert_to_tensor(images)
    Y = tf.convert_to_tensor(np.asarray(labels, dtype=np.float32))
    stream = epoch_batches(len(labels), seed, batch_size, int(epochs[0]), int(epochs[1]), int(first_step))

    def gather(e, i, idx):
        x = tf.cast(tf.gather(X, idx), tf.float32)
        if augment != "off":
            x = _augment(x, augment, tf.stack([tf.cast(seed, tf.int64) + 7919 * e, i]))
        return x, tf.gather(Y, idx)

    return without_autotune(stream.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))


def eval_dataset(images, labels: Sequence[Any] | None, batch_size: int):
    """Batches in order (validation, evaluation, prediction)."""
    import numpy as np
    import tensorflow as tf

    n = len(images)
    X = tf.convert_to_tensor(images)
    if labels is None:
        ds = tf.data.Dataset.range(n).batch(batch_size).map(lambda i: tf.cast(tf.gather(X, i), tf.float32))
    else:
        Y = tf.convert_to_tensor(np.asarray(labels, dtype=np.float32))
        ds = tf.data.Dataset.range(n).batch(batch_size).map(
            lambda i: (tf.cast(tf.gather(X, i), tf.float32), tf.gather(Y, i)))
    return without_autotune(ds.prefetch(tf.data.AUTOTUNE))
