"""Grad-CAM heat maps: where in a photo the model sees the crack.

For each image, the gradient of the crack *logit* (the last Dense layer before its sigmoid, so the
map does not vanish when the probability saturates at 1.0) with respect to the last Conv2D
layer's feature maps is averaged per channel; the channels weighted by it, summed and passed
through ReLU give a coarse map of the evidence *for* a crack (Selvaraju et al., 2017). It is scaled
to [0, 1] per image, stretched to the ORIGINAL photo's size (the model saw the whole photo resized
without a crop, so the map covers it exactly) and drawn over it: warm colours mark crack evidence,
places without any are left as they are. The colour's opacity also follows the crack probability
(``0.2 + 0.8 * p``): a photo the model calls sound shows only a faint trace of its weak evidence,
not a full-strength map scaled up from nothing. An image with no evidence at all gets no colour.

Correct under a ``mixed_bfloat16`` policy: feature maps and gradients are cast to float32 before
anything is summed. Images are decoded and resized as in training (``crackops.ml.predict``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from crackops.errors import UsageError

SUFFIX = "_gradcam.png"
ALPHA = 0.6          # opacity of the colour where the heat is highest
COLORMAP = "jet"
MIN_STRENGTH = 0.2   # opacity scale for a photo with crack probability 0

# EXIF orientation -> PIL transpose method (what ImageOps.exif_transpose does)
_EXIF_ORIENTATION = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
                     6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}


def last_conv_layer(model: Any):
    import keras

    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.Conv2D):
            return layer
    raise UsageError(f"model {getattr(model, 'name', '')!r} has no Conv2D layer",
                     "Grad-CAM needs a convolutional model such as the seed CNN")


class GradCam:
    """Grad-CAM for a chain-shaped Keras model (a Sequential, like the seed CNN) whose last layer is
    a 1-unit Dense (sigmoid or linear).

    The layers are called one after the other on the batch rather than through a sub-model such as
    ``keras.Model(model.inputs, [conv.output, model.outputs])``: on a model loaded from ``.h5``
    each layer has several graph nodes, ``layer.output`` is the first one, and such a sub-model
    computes the conv features on a path the output does not depend on (the gradient is None).
    """

    def __init__(self, model: Any, layer: Any = None):
        import keras

        self.model = model
        self.layer = layer or last_conv_layer(model)
        if not isinstance(model, keras.Sequential):
            raise UsageError(f"Grad-CAM here works on Sequential models; {getattr(model, 'name', 'this')} is "
                             f"a {type(model).__name__}", "use a model trained by crackops (the seed CNN)")
        self.layers = list(model.layers)
        head = self.layers[-1]
        if isinstance(head, keras.layers.Dense) and head.units == 1:
            self.head = head
            self.body = self.layers[:-1]
        else:
            self.head = None
            self.body = self.layers
        act = getattr(self.head.activation, "__name__", "") if self.head is not None else ""
        self.is_probability = act == "sigmoid"
        if not any(l is self.layer for l in self.body):
            raise UsageError(f"layer {self.layer.name} is not part of the model's layer chain",
                             "pick one of the model's own Conv2D layers")

    def heatmaps(self, batch: Any) -> tuple[Any, Any]:
        """``(maps, probs)``: float32 maps (n, h, w) in [0, 1] at the conv layer's resolution, and
        the crack probabilities (n,) from the same forward pass."""
        import numpy as np
        import tensorflow as tf

        x = tf.cast(batch, tf.float32)
        conv = None
        with tf.GradientTape() as tape:
            for layer in self.body:
                x = layer(x, training=False)
                if layer is self.layer:
                    conv = x
                    tape.watch(conv)
            feat = tf.cast(x, tf.float32)
            if self.head is not None:
                logit = tf.matmul(feat, tf.cast(self.head.kernel, tf.float32))
                if self.head.use_bias:
                    logit = logit + tf.cast(self.head.bias, tf.float32)
                logit = tf.reshape(logit, [-1])
                probs = tf.sigmoid(logit) if self.is_probability else logit
            else:
                logit = tf.reshape(feat, [-1])
                probs = logit
            total = tf.reduce_sum(logit)   # per-image gradients: the images do not interact
        grads = tape.gradient(total, conv)
        if grads is None:  # pragma: no cover - guarded by the layer loop above
            raise UsageError("Grad-CAM got no gradient for the conv layer", "report this with the model file")
        grads = tf.cast(grads, tf.float32)
        conv32 = tf.cast(conv, tf.float32)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)           # (n, 1, 1, c)
        cam = tf.nn.relu(tf.reduce_sum(weights * conv32, axis=-1)).numpy()    # (n, h, w)
        out = np.zeros_like(cam, dtype=np.float32)
        for i in range(len(cam)):
            peak = float(cam[i].max()) if cam[i].size else 0.0
            if peak > 0 and np.isfinite(peak):
                out[i] = cam[i] / peak
        return out, np.asarray(probs, dtype=np.float64)


def _open_original(path: str):
    from PIL import Image

    with Image.open(path) as im:
        orientation = im.getexif().get(0x0112)
        im.seek(0)
        rgb = im.convert("RGB")  # like decode_image(channels=3): grey repeated, alpha dropped
    return rgb, orientation


def strength_for(prob: float) -> float:
    """Opacity scale of the heat map for an image with crack probability ``prob``."""
    p = min(1.0, max(0.0, float(prob))) if prob == prob else 1.0
    return MIN_STRENGTH + (1.0 - MIN_STRENGTH) * p


def overlay(image: Any, heat: Any, alpha: float = ALPHA, colormap: str = COLORMAP, strength: float = 1.0):
    """The heat map (h, w in [0, 1]) stretched over ``image`` (a PIL RGB image) at its own size;
    the colour's opacity is ``alpha * strength * heat``."""
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image

    w, h = image.size
    hm = Image.fromarray(np.asarray(heat, dtype=np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR)
    hm = np.clip(np.asarray(hm, dtype=np.float32), 0.0, 1.0)
    colour = colormaps[colormap](hm)[..., :3].astype(np.float32) * 255.0
    a = (alpha * strength * hm)[..., None]
    base = np.asarray(image, dtype=np.float32)
    blended = base * (1.0 - a) + colour * a
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8), mode="RGB")


def _unique_names(paths: Sequence[str]) -> list[str]:
    """``<stem>_gradcam.png`` per path; a stem seen before gets ``-2``, ``-3``... appended."""
    used: dict[str, int] = {}
    names = []
    for p in paths:
        stem = Path(p).stem or "image"
        n = used.get(stem.lower(), 0) + 1
        used[stem.lower()] = n
        names.append(f"{stem}{SUFFIX}" if n == 1 else f"{stem}-{n}{SUFFIX}")
    return names


def explain(model: Any, paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike, *,
            batch_size: int = 16, progress: Callable[[int], None] | None = None) -> dict[str, Path]:
    """Write one ``<stem>_gradcam.png`` per usable image into ``out_dir``.

    ``model`` is a ``LoadedModel`` or a Keras model; ``paths`` files and folders as for
    ``predict``. Returns ``{image path: PNG path}``; images that do not decode are left out
    (``predict`` reports them)."""
    from PIL import PngImagePlugin

    from crackops.ml.predict import LoadedModel, check_images, iter_batches, list_images, model_image_size

    lm = model if isinstance(model, LoadedModel) else LoadedModel(model, "", model_image_size(model))
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--explain {out} is a file", "give a folder for the heat-map PNGs")
    out.mkdir(parents=True, exist_ok=True)
    candidates = [p for p, problem in list_images(paths) if problem is None]
    bad = check_images(candidates)
    good = [p for p in candidates if p not in bad]
    names = _unique_names(good)
    cam = GradCam(lm.model)
    written: dict[str, Path] = {}
    for idx, batch in iter_batches(good, lm.image_size, batch_size):
        maps, probs = cam.heatmaps(batch)
        for i, m, pr in zip(idx, maps, probs):
            image, orientation = _open_original(good[i])
            picture = overlay(image, m, strength=strength_for(pr) if cam.is_probability else 1.0)
            method = _EXIF_ORIENTATION.get(orientation or 1)
            if method:  # show it the way viewers show the original
                from PIL import Image

                picture = picture.transpose(getattr(Image.Transpose, method))
            info = PngImagePlugin.PngInfo()
            info.add_text("crackops:source", str(good[i]))
            info.add_text("crackops:prob_crack", f"{float(pr):.6f}")
            info.add_text("crackops:layer", cam.layer.name)
            dest = out / names[i]
            picture.save(dest, format="PNG", pnginfo=info)
            written[good[i]] = dest
        if progress:
            progress(len(idx))
    return written
