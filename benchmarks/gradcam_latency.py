"""How long does one diagnosis take on CPU, compared with the model alone and a tutorial recipe?

Times, on the same model and the same full-resolution val X-ray (decoded to at most 1,024 px a
side, as the Diagnose page does), after warm-up, the median of ``--runs`` (at least 20) calls
each, in interleaved rounds so that load from other processes hits all of them alike:

1. **forward**: one bare forward pass on the already preprocessed image (a ``tf.function``
   around ``model(x, training=False)``) - the floor;
2. **diagnose**: what the Diagnose page asks of the model per upload: ``Predictor.explain_all``
   on the decoded pixels (preprocess, probability, input check, Grad-CAM and Grad-CAM++);
   under a linear head one forward pass (CAM, :mod:`cxr_core.explain.cam`);
3. **gradient**: the same with the gradient path forced (one forward and one backward pass),
   the way it was computed before;
4. **full**: from the file's bytes: decode + ``explain_all`` + ``overlay``;
5. **naive**: the same decode and preprocessing, then the keras-io tutorial recipe: a new
   gradient model built on every call, ``model.predict`` for the score, an eager gradient
   pass, then the same resize and overlay.

Targets: diagnose / forward <= 1.2 and naive / full >= 3. Uses the bundled
``assets/models/*.keras`` when there is one, else an untrained ``efficientnet_lite0`` at 224 px
(timing does not depend on the weights). Prints figures; asserts nothing. About a minute.

    python benchmarks/gradcam_latency.py [--data ../shared/data/chest_xray] [--runs 20]

Last line: ``diagnose_vs_forward=<x> gradient_vs_forward=<x> full_vs_forward=<x>
naive_vs_full=<x>``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["CUDA_VISIBLE_DEVICES"] = ""  # CPU figures, even on a machine with a GPU

import cv2
import keras
import numpy as np
import tensorflow as tf

from cxr_core.config import ModelConfig
from cxr_core.imaging.decode import read_image
from cxr_core.imaging.preprocess import to_model_input
from cxr_core.inference.input_check import gate_path, load_gate, pooled_output
from cxr_core.inference.predictor import Predictor, overlay
from cxr_core.model.build import build_model
from cxr_core.model.build import read_metadata as load_metadata

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "chest_xray"
SIDE = 1024  # the Diagnose page decodes uploads to at most this many pixels a side


def interleaved_median_ms(
    functions: dict[str, Callable[[], object]], runs: int, warmup: int = 3
) -> dict[str, float]:
    """Median wall time of each function, in milliseconds, over ``runs`` rounds.

    Each round calls every function once, in turn, so that a busy neighbour on a shared machine
    slows all of them alike instead of whichever happened to be running.
    """
    for _ in range(warmup):
        for function in functions.values():
            function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(runs):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: 1000.0 * statistics.median(values) for name, values in times.items()}


def load_predictors() -> tuple[Predictor, Predictor, str]:
    """The bundled model if there is one, else an untrained efficientnet_lite0 at 224 px:
    its predictor, and one forced onto the gradient path."""
    bundled = sorted((ROOT / "assets" / "models").glob("*.keras"))
    if bundled:
        fast = Predictor.from_path(bundled[0])
        features = int(pooled_output(fast.model).shape[-1])
        gate = load_gate(gate_path(bundled[0]), features)  # the same input check on both
        slow = Predictor(fast.model, load_metadata(bundled[0]), gate=gate, force_gradients=True)
        return fast, slow, f"bundled model {bundled[0].name}"
    config = ModelConfig(backbone="efficientnet_lite0", weights="none", image_size=224)
    metadata = {"threshold": 0.5, "image_size": 224, "backbone": "efficientnet_lite0"}
    model = build_model(config)
    slow = Predictor(model, metadata, force_gradients=True)
    return Predictor(model, metadata), slow, "efficientnet_lite0, 224 px, untrained"


def decode(data: bytes) -> np.ndarray:
    """Decode as the Diagnose page does: reduced JPEG decoding, then at most ``SIDE`` a side."""
    pixels = read_image(data, max_side=SIDE).pixels
    scale = SIDE / max(pixels.shape)
    if scale >= 1:
        return pixels
    size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def naive_gradcam(data: bytes, model: keras.Model, layer_name: str, size: int) -> np.ndarray:
    """The keras-io ``make_gradcam_heatmap`` recipe, as tutorials write it."""
    pixels = decode(data)
    batch = to_model_input(pixels, size)[tf.newaxis]
    score = model.predict(batch, verbose=0)[0, 0]
    grad_model = keras.Model(model.inputs, [model.get_layer(layer_name).output, model.output])
    with tf.GradientTape() as tape:
        conv_output, predictions = grad_model(batch)
        class_channel = predictions[:, 0] if score >= 0.5 else 1.0 - predictions[:, 0]
    grads = tape.gradient(class_channel, conv_output)
    pooled = tf.reduce_mean(grads, axis=(0, 1, 2))
    heatmap = tf.squeeze(conv_output[0] @ pooled[..., tf.newaxis])
    heatmap = tf.maximum(heatmap, 0) / (tf.math.reduce_max(heatmap) + 1e-12)
    heatmap = cv2.resize(heatmap.numpy(), (pixels.shape[1], pixels.shape[0]))
    return overlay(pixels, heatmap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per figure, >= 20")
    args = parser.parse_args()
    if args.runs < 20:
        parser.error("--runs must be at least 20")
    files = sorted((args.data / "val").glob("*/*.jpeg"))
    if not files:
        sys.exit(f"no val images under {args.data}")
    image_path = files[0]
    data = image_path.read_bytes()
    predictor, gradient_predictor, description = load_predictors()
    model, size = predictor.model, predictor.image_size
    pixels = decode(data)

    batch = to_model_input(pixels, size)[tf.newaxis]
    forward_step = tf.function(lambda x: model(x, training=False))

    def full_path() -> np.ndarray:
        pixels = decode(data)
        result = predictor.explain_all(pixels)
        return overlay(pixels, result.heatmap)

    medians = interleaved_median_ms(
        {
            "forward": lambda: forward_step(batch).numpy(),
            "diagnose": lambda: predictor.explain_all(pixels),
            "gradient": lambda: gradient_predictor.explain_all(pixels),
            "full": full_path,
            "naive": lambda: naive_gradcam(data, model, predictor.layer_name, size),
        },
        args.runs,
    )
    forward, full, naive = medians["forward"], medians["full"], medians["naive"]
    diagnose, gradient = medians["diagnose"], medians["gradient"]
    path = "forward pass only (CAM)" if predictor.explains_from_forward_pass else "gradients"

    print(f"model: {description} (Grad-CAM layers {', '.join(predictor.layer_names)})")
    print(f"image: {image_path.name}, {pixels.shape[1]} x {pixels.shape[0]} px as decoded")
    print(
        f"CPU threads: intra-op {tf.config.threading.get_intra_op_parallelism_threads()} "
        f"(0 = all {os.cpu_count()} cores); median of {args.runs} interleaved runs"
    )
    print(f"1. forward pass on the preprocessed image        {forward:8.1f} ms")
    print(f"2. Diagnose: explain_all, both maps ({path}) {diagnose:8.1f} ms")
    print(f"3. the same on the gradient path                 {gradient:8.1f} ms")
    print(f"4. full path: decode + explain_all + overlay     {full:8.1f} ms")
    print(f"5. naive tutorial Grad-CAM (same decode)         {naive:8.1f} ms")
    print(f"diagnose / forward = {diagnose / forward:.2f} (target <= 1.2)")
    print(f"naive / full       = {naive / full:.2f} (target >= 3)")
    print(
        f"diagnose_vs_forward={diagnose / forward:.2f} gradient_vs_forward={gradient / forward:.2f}"
        f" full_vs_forward={full / forward:.2f} naive_vs_full={naive / full:.2f}"
    )


if __name__ == "__main__":
    main()
