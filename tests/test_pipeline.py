"""The training input order: every epoch a full reshuffle, whatever the size of the training set.

The split lists training images sorted by class. With a shuffle buffer smaller than the data, the
full dataset's epochs began with ~80 batches holding no crack at all; nothing at the size of the
sample photos showed it. These tests use a class-sorted set larger than any buffer the pipeline
ever used (10,000), and tiny 1-pixel images so they run in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tf
tf = pytest.importorskip("tensorflow")

from crackops.ml.pipeline import eval_dataset, train_dataset  # noqa: E402

N = 30_000  # larger than the old 10,000 shuffle buffer


def _sorted_set(n: int = N):
    labels = np.array([0] * (n // 2) + [1] * (n - n // 2), dtype=np.float32)  # sorted by class, as the split
    images = np.arange(n, dtype=np.int64) % 251
    images = images.astype(np.uint8).reshape(n, 1, 1, 1).repeat(3, axis=3)
    return images, labels


def _epoch_labels(ds) -> np.ndarray:
    return np.concatenate([y.numpy() for _, y in ds])


def _epochs(images, labels, batch_size, n_epochs, **kw):
    """The training stream over ``n_epochs`` epochs, cut back into one array of x per epoch (the
    first pixel) and one of labels."""
    xs, ys = [], []
    for x, y in train_dataset(images, labels, batch_size, epochs=(0, n_epochs), **kw):
        xs.append(x.numpy()[:, 0, 0, 0])
        ys.append(y.numpy())
    n = len(labels)
    x, y = np.concatenate(xs), np.concatenate(ys)
    return [x[e * n:(e + 1) * n] for e in range(n_epochs)], [y[e * n:(e + 1) * n] for e in range(n_epochs)]


def test_every_tenth_of_an_epoch_holds_both_classes_in_proportion():
    images, labels = _sorted_set()
    _, per_epoch = _epochs(images, labels, 64, 2, seed=3)
    for epoch, ys in enumerate(per_epoch):
        assert len(ys) == N and ys.sum() == labels.sum()  # each image exactly once per epoch
        for tenth in np.array_split(ys, 10):
            assert 0.46 < tenth.mean() < 0.54, (epoch, tenth.mean())
        # even the first batches: the first 20 (1,280 images) are not one class
        assert 0.40 < ys[:1280].mean() < 0.60


def test_order_differs_between_epochs_and_is_reproducible_from_the_seed():
    images, labels = _sorted_set(5000)
    images = np.arange(5000).reshape(5000, 1, 1, 1).repeat(3, axis=3).astype(np.float32)  # index as pixel

    (e1, e2), _ = _epochs(images, labels, 100, 2, seed=7)
    e1, e2 = e1.astype(int), e2.astype(int)
    assert sorted(e1) == list(range(5000)) and sorted(e2) == list(range(5000))
    assert (e1 != e2).mean() > 0.9  # reshuffled each epoch
    assert (_epochs(images, labels, 100, 1, seed=7)[0][0].astype(int) == e1).all()
    assert (_epochs(images, labels, 100, 1, seed=8)[0][0].astype(int) != e1).mean() > 0.9
    # a run resumed at epoch 1 sees the order an uninterrupted run saw
    resumed = np.concatenate([x.numpy()[:, 0, 0, 0] for x, _ in
                              train_dataset(images, labels, 100, seed=7, epochs=(1, 2))]).astype(int)
    assert (resumed == e2).all()


@pytest.mark.parametrize("augment", ["off", "full"])
def test_a_resume_at_a_batch_inside_an_epoch_sees_the_rest_of_that_epoch_unchanged(augment):
    """A mid-epoch backup after batch 7 of epoch 1: the stream from there is exactly the
    uninterrupted stream without its first epoch and 7 batches, augmentation included (it is
    drawn from the epoch and the batch number, which the skip keeps)."""
    images = (np.arange(1000) % 251).reshape(1000, 1, 1, 1).repeat(3, axis=3).astype(np.uint8)
    labels = np.zeros(1000, dtype=np.float32)
    full = [x.numpy() for x, _ in train_dataset(images, labels, 100, seed=7, augment=augment, epochs=(0, 3))]
    resumed = [x.numpy() for x, _ in train_dataset(images, labels, 100, seed=7, augment=augment, epochs=(1, 3),
                                                   first_step=7)]
    assert len(full) == 30 and len(resumed) == 30 - 10 - 7
    assert all(np.array_equal(a, b) for a, b in zip(full[17:], resumed))


def test_images_stay_with_their_labels_and_eval_keeps_order():
    n = 2000
    labels = (np.arange(n) % 3 == 0).astype(np.float32)
    images = np.zeros((n, 2, 2, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = (labels * 200).astype(np.uint8)
    for x, y in train_dataset(images, labels, batch_size=128, seed=0, augment="off"):
        assert x.dtype == tf.float32
        np.testing.assert_array_equal(x.numpy()[:, 0, 0, 0] / 200.0, y.numpy())
    xs = np.concatenate([x.numpy() for x in eval_dataset(images, None, 128)])
    np.testing.assert_array_equal(xs, images.astype(np.float32))


@pytest.mark.parametrize("mode", ["geometric", "full"])
def test_augmentation_keeps_labels_and_range(mode):
    n = 512
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    labels = (np.arange(n) % 2).astype(np.float32)
    for x, y in train_dataset(images, labels, batch_size=64, seed=1, augment=mode):
        x = x.numpy()
        assert x.shape[1:] == (16, 16, 3) and x.min() >= 0 and x.max() <= 255
        assert y.shape[0] == x.shape[0]
    # same seed, same order: the augmented epoch differs from the plain one image by image
    plain = np.concatenate([x.numpy() for x, _ in train_dataset(images, labels, 64, seed=1)])
    aug = np.concatenate([x.numpy() for x, _ in train_dataset(images, labels, 64, seed=1, augment=mode)])
    assert (aug != plain).reshape(n, -1).any(axis=1).mean() > 0.5
    if mode == "geometric":  # flips and turns move pixels, never change their values
        np.testing.assert_allclose(np.sort(aug.reshape(n, -1).sum(axis=1)), np.sort(plain.reshape(n, -1).sum(axis=1)))


def test_unknown_augmentation_is_refused():
    with pytest.raises(ValueError, match="augment"):
        train_dataset(np.zeros((4, 2, 2, 3), np.uint8), [0, 1, 0, 1], 2, augment="rotate-a-lot")


def test_every_pipeline_runs_without_tf_data_autotuning(tmp_path, monkeypatch):
    """tf.data's autotuning keeps a model thread that sleeps for up to 60 s, and deleting an
    iterator waits for it to wake: a job finished training and then sat idle past its time limit
    (Slurm TIMEOUT). Every dataset crackops builds, and every one it iterates, has it off."""
    from PIL import Image

    from crackops.ml.pipeline import load_images
    from crackops.ml.predict import iter_batches

    monkeypatch.delenv("CRACKOPS_TF_DATA_AUTOTUNE", raising=False)
    images, labels = _sorted_set(200)
    built = {"train": train_dataset(images, labels, 32, augment="full"),
             "eval": eval_dataset(images, labels, 32), "eval, no labels": eval_dataset(images, None, 32)}
    assert {k: ds.options().autotune.enabled for k, ds in built.items()} == dict.fromkeys(built, False)

    iterated = []
    real_iter = tf.data.Dataset.__iter__

    def spy(self):
        iterated.append(self.options().autotune.enabled)
        return real_iter(self)

    monkeypatch.setattr(tf.data.Dataset, "__iter__", spy)
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.jpg"))
        Image.new("RGB", (20, 20), (i * 40, 0, 0)).save(paths[-1])
    assert load_images(paths, 8).shape == (3, 8, 8, 3)
    assert sum(len(idx) for idx, _ in iter_batches(paths, 8)) == 3
    assert iterated == [False, False]
