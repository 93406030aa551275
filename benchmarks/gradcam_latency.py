"""How long does one diagnosis take on CPU, compared with the model alone and a tutorial recipe?

Times three things on the same model and the same full-resolution val X-ray, after warm-up,
as the median of ``--runs`` (at least 20) calls each, taken in interleaved rounds so that load
from other processes hits all three alike:

1. **forward**: one bare forward pass on the already preprocessed image (a ``tf.function``
   around ``model(x, training=False)``) - the floor;
2. **full**: our whole path from the file's bytes: ``read_image`` + ``Predictor.explain``
   (preprocess, probability and Grad-CAM) + ``overlay``;
3. **naive**: the same decode and preprocessing, then the keras-io tutorial recipe: a new
   gradient model built on every call, ``model.predict`` for the score, an eager gradient
   pass, then the same resize and overlay.

Targets: full / forward <= 2.5 (one forward and a partial backward pass is about 2) and
naive / full >= 3. Uses the bundled ``assets/models/*.keras`` when there is one, else an
untrained ``efficientnet_lite0`` at 224 px (timing does not depend on the weights). Prints
figures; asserts nothing.

    python benchmarks/gradcam_latency.py [--data ../shared/data/chest_xray] [--runs 20]

Last line: ``full_vs_forward=<number> naive_vs_full=<number>``.
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from cxr_core.config import ModelConfig  # noqa: E402
from cxr_core.gradcam import Predictor, overlay  # noqa: E402
from cxr_core.imaging import read_image  # noqa: E402
from cxr_core.model import build_model  # noqa: E402
from cxr_core.preprocess import to_model_input  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "chest_xray"


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


def load_predictor() -> tuple[Predictor, str]:
    """The bundled model if there is one, else an untrained efficientnet_lite0 at 224 px."""
    bundled = sorted((ROOT / "assets" / "models").glob("*.keras"))
    if bundled:
        return Predictor.from_path(bundled[0]), f"bundled model {bundled[0].name}"
    config = ModelConfig(backbone="efficientnet_lite0", weights="none", image_size=224)
    metadata = {"threshold": 0.5, "image_size": 224, "backbone": "efficientnet_lite0"}
    return Predictor(build_model(config), metadata), "efficientnet_lite0, 224 px, untrained"


def naive_gradcam(data: bytes, model: keras.Model, layer_name: str, size: int) -> np.ndarray:
    """The keras-io ``make_gradcam_heatmap`` recipe, as tutorials write it."""
    pixels = read_image(data).pixels
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
    predictor, description = load_predictor()
    model, size = predictor.model, predictor.image_size
    pixels = read_image(data).pixels

    batch = to_model_input(pixels, size)[tf.newaxis]
    forward_step = tf.function(lambda x: model(x, training=False))

    def full_path() -> np.ndarray:
        decoded = read_image(data)
        result = predictor.explain(decoded.pixels)
        return overlay(decoded.pixels, result.heatmap)

    medians = interleaved_median_ms(
        {
            "forward": lambda: forward_step(batch).numpy(),
            "full": full_path,
            "naive": lambda: naive_gradcam(data, model, predictor.layer_name, size),
        },
        args.runs,
    )
    forward, full, naive = medians["forward"], medians["full"], medians["naive"]

    print(f"model: {description} (Grad-CAM layer {predictor.layer_name})")
    print(f"image: {image_path.name}, {pixels.shape[1]} x {pixels.shape[0]} px, {len(data)} bytes")
    print(
        f"CPU threads: intra-op {tf.config.threading.get_intra_op_parallelism_threads()} "
        f"(0 = all {os.cpu_count()} cores); median of {args.runs} interleaved runs"
    )
    print(f"1. forward pass on the preprocessed image       {forward:8.1f} ms")
    print(f"2. full path: decode+preprocess+explain+overlay {full:8.1f} ms")
    print(f"3. naive tutorial Grad-CAM (same decode)        {naive:8.1f} ms")
    print(f"full / forward = {full / forward:.2f} (target <= 2.5)")
    print(f"naive / full   = {naive / full:.2f} (target >= 3)")
    print(f"full_vs_forward={full / forward:.2f} naive_vs_full={naive / full:.2f}")


if __name__ == "__main__":
    main()
