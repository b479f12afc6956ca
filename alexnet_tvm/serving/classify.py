"""``/classify``: an encoded image in, top-k class names out, preprocessed as ``predict`` does.

The image size is checked from the header before any pixel is decoded, so a small file that
claims a huge canvas (a decompression bomb) is refused with 413 instead of filling memory. So is
the size the image would have after the resize: a 1-pixel-high strip scaled so that its short
side is 32 px is 32 times wider (a 1 kB PNG of 400000x1 would become 12.8M x 32, gigabytes).
Pillow's own bomb check (over twice ``Image.MAX_IMAGE_PIXELS``) is a 413 as well.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from alexnet_tvm.errors import ImageSizeError, ToolkitError
from alexnet_tvm.meta import ModelMeta
from alexnet_tvm.preprocess import check_resized, eval_transform
from alexnet_tvm.runtime.predict import softmax

from .errors import BadRequest, TooLarge


def decode_image(data: bytes, max_pixels: int, resize_size: int | None = None) -> Image.Image:
    """An RGB image from JPEG/PNG/... bytes; 413 when it, or its resize to ``resize_size``, is over
    ``max_pixels`` (checked from the header, before decoding); 400 when unreadable."""
    if not data:
        raise BadRequest("empty body: send the image file as the request body")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise TooLarge(f"image of {w}x{h} pixels is over the limit of {max_pixels}")
            if resize_size is not None:
                check_resized(w, h, resize_size, max_pixels)
            return im.convert("RGB")
    except ImageSizeError as e:
        raise TooLarge(str(e)) from None
    except Image.DecompressionBombError as e:
        raise TooLarge(f"image is over Pillow's decompression-bomb limit ({str(e)[:120]})") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise BadRequest(f"not a readable image ({str(e)[:120]})") from None


def image_rows(data: bytes, meta: ModelMeta, max_pixels: int) -> np.ndarray:
    """The [1, C, H, W] float32 input of one image, exactly as ``predict`` prepares it."""
    img = decode_image(data, max_pixels, meta.resize_size)
    try:
        x = eval_transform(img, meta.resize_size, meta.input_size, meta.mean, meta.std)
    except ImageSizeError as e:  # preprocess's own bound on the resized image
        raise TooLarge(str(e)) from None
    except ToolkitError as e:
        raise BadRequest(str(e)) from None
    return x[None]


def top_k(logits: np.ndarray, meta: ModelMeta, k: int) -> list[dict]:
    """The ``k`` most probable classes of one row of logits, most probable first."""
    probs = softmax(logits[None].astype(np.float64))[0]
    idx = np.argsort(-probs, kind="stable")[: min(k, len(probs))]
    return [{"index": int(i), "class": meta.class_names[i], "probability": float(probs[i])} for i in idx]
