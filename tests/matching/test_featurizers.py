"""Featurizers: shapes, dtypes and determinism; and weights that are wrong, missing, unsafe or not cached."""

from __future__ import annotations

import os
import pickle
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision import models

from matching import featurizers
from matching.featurizers import FeaturizerError, WeightsError
from matching.featurizers.finetuned import FineTuneNet, checkpoint
from matching.featurizers.histogram import N_BINS
from matching.featurizers.torch_models import torchvision_featurizer

# (registry key, layers and their sizes)
NETWORKS = [
    ("vgg16", {"fc6": 4096, "fc7": 4096}),
    ("resnet18", {"penultimate": 512}),
    ("resnet50", {"penultimate": 2048}),
]


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    """Two small images of noise, of odd sizes so the transforms must resize and crop (VGG16 costs ~0.5 s each)."""
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, size=(40 + 8 * i, 48, 3), dtype=np.uint8)) for i in range(2)]


def resnet18_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return models.resnet18(weights=None).state_dict()


@pytest.mark.parametrize(("key", "dims"), NETWORKS)
def test_each_untrained_network_gives_float32_rows_of_its_layer_sizes(images, key, dims):
    featurizer = featurizers.get(key, "none")

    out = featurizer.embed(images)

    assert featurizer.dims() == dims
    assert set(out) == set(dims)
    for layer, dim in dims.items():
        assert out[layer].shape == (2, dim)
        assert out[layer].dtype == np.float32
        assert np.isfinite(out[layer]).all()
        assert out[layer].std(axis=0).max() > 0  # different images, different features
    np.testing.assert_array_equal(featurizer.embed(images)[layer], out[layer])


def test_vgg16_fc6_and_fc7_are_different_layers_tapped_before_their_relu(images):
    out = featurizers.get("vgg16", "none").embed(images)

    assert not np.allclose(out["fc6"], out["fc7"])
    # Before the ReLU, so sign-binarization (Hamming) sees both signs.
    assert (out["fc6"] < 0).any() and (out["fc7"] < 0).any()


def test_untrained_means_the_same_network_on_every_build(images):
    first = torchvision_featurizer("resnet18", "none").embed(images)["penultimate"]
    second = torchvision_featurizer("resnet18", "none").embed(images)["penultimate"]

    np.testing.assert_array_equal(first, second)


def test_building_an_untrained_network_leaves_the_callers_random_numbers_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)

    torchvision_featurizer("resnet18", "none")

    torch.testing.assert_close(torch.rand(3), expected)


def test_a_weights_file_is_loaded_into_the_network(tmp_path, images):
    torch.save(resnet18_state(seed=1), tmp_path / "w.pt")
    reference = models.resnet18(weights=None)
    reference.load_state_dict(resnet18_state(seed=1))
    reference.fc = nn.Identity()
    reference.eval()

    featurizer = featurizers.get("resnet18", str(tmp_path / "w.pt"))
    out = featurizer.embed(images)["penultimate"]

    batch = torch.stack([featurizer.transform(image) for image in images])
    with torch.inference_mode():
        np.testing.assert_allclose(out, reference(batch).numpy(), rtol=1e-4, atol=1e-5)
    assert not np.allclose(out, featurizers.get("resnet18", "none").embed(images)["penultimate"])


def test_safetensors_weights_load_like_a_pt_file(tmp_path, images):
    from safetensors.torch import save_file

    state = resnet18_state(seed=2)
    torch.save(state, tmp_path / "w.pt")
    save_file(state, str(tmp_path / "w.safetensors"))

    from_pt = featurizers.get("resnet18", str(tmp_path / "w.pt")).embed(images)["penultimate"]
    from_safetensors = featurizers.get("resnet18", str(tmp_path / "w.safetensors")).embed(images)["penultimate"]

    np.testing.assert_array_equal(from_pt, from_safetensors)


def test_a_relative_weights_path_is_read_in_the_private_build_storage(isolated_private, images):
    (isolated_private / "weights").mkdir(parents=True)
    torch.save(resnet18_state(seed=3), isolated_private / "weights" / "mine.pt")

    relative = featurizers.get("resnet18", "weights/mine.pt").embed(images)["penultimate"]
    absolute = featurizers.get("resnet18", str(isolated_private / "weights" / "mine.pt")).embed(images)["penultimate"]

    np.testing.assert_array_equal(relative, absolute)


def test_a_weights_file_replaced_in_place_is_read_again(tmp_path, images):
    path = tmp_path / "w.pt"
    torch.save(resnet18_state(seed=4), path)
    before = featurizers.get("resnet18", str(path)).embed(images)["penultimate"]

    torch.save(resnet18_state(seed=5), path)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    after = featurizers.get("resnet18", str(path)).embed(images)["penultimate"]

    assert not np.allclose(before, after)


def test_the_finetuned_featurizer_reads_its_architecture_from_the_checkpoint(tmp_path, images):
    torch.manual_seed(0)
    model = FineTuneNet("resnet18", hidden_dim=16, n_classes=3)
    data = checkpoint(model, backbone="resnet18", classes=["bag", "hat", "shoe"], input_size=32, accuracy=0.5)
    torch.save(data, tmp_path / "ft.pt")

    featurizer = featurizers.get("finetuned", str(tmp_path / "ft.pt"))
    out = featurizer.embed(images)

    assert featurizer.dims() == {"hidden": 16}
    assert out["hidden"].shape == (2, 16)
    assert out["hidden"].dtype == np.float32
    assert featurizer.transform(images[0]).shape == (3, 32, 32)  # the checkpoint's input size
    np.testing.assert_array_equal(featurizer.embed(images)["hidden"], out["hidden"])
    model.eval()
    with torch.inference_mode():
        batch = torch.stack([featurizer.transform(image) for image in images])
        expected = model.hidden(model.backbone(batch)).numpy()  # the dense layer, before ReLU and dropout
    np.testing.assert_allclose(out["hidden"], expected, rtol=1e-4, atol=1e-5)


def test_the_finetuned_featurizer_refuses_plain_torchvision_weights(tmp_path):
    torch.save(resnet18_state(seed=0), tmp_path / "plain.pt")

    with pytest.raises(WeightsError, match="plain.pt is not a fine-tuned network from `manage.py train_featurizer`"):
        featurizers.get("finetuned", str(tmp_path / "plain.pt"))


def test_the_finetuned_featurizer_needs_a_weights_file():
    with pytest.raises(WeightsError, match="needs the weights file written by `manage.py train_featurizer`"):
        featurizers.get("finetuned", "none")


def test_the_colour_histogram_gives_unit_length_float32_rows(images):
    featurizer = featurizers.get("colour-histogram", "none")

    out = featurizer.embed(images)["hsv"]

    assert out.shape == (2, N_BINS) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(featurizer.embed(images)["hsv"], out)


def test_the_colour_histogram_puts_a_plain_colour_in_one_bin_and_tells_colours_apart():
    featurizer = featurizers.get("colour-histogram", "none")

    red, blue, red_again = featurizer.embed(
        [
            Image.new("RGB", (30, 20), (220, 20, 20)),
            Image.new("RGB", (30, 20), (20, 20, 220)),
            Image.new("RGB", (50, 50), (220, 20, 20)),
        ]
    )["hsv"]

    assert np.count_nonzero(red) == 1 and red.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(red, red_again)  # size does not matter
    assert red @ blue == 0.0


def test_an_unknown_featurizer_or_layer_is_named_with_the_choices():
    with pytest.raises(FeaturizerError, match="Unknown featurizer 'alexnet'; known: vgg16, resnet18"):
        featurizers.spec_for("alexnet", "fc6")
    with pytest.raises(FeaturizerError, match="vgg16 has no layer 'fc8'; choose one of fc6, fc7"):
        featurizers.spec_for("vgg16", "fc8")


# ---------------------------------------------------------------------------------------- bad weights


def test_weights_of_another_architecture_are_refused_with_what_does_not_fit(tmp_path):
    torch.save(resnet18_state(seed=0), tmp_path / "r18.pt")

    with pytest.raises(WeightsError) as caught:
        featurizers.get("resnet50", str(tmp_path / "r18.pt"))

    message = str(caught.value)
    assert message.startswith("r18.pt does not fit ResNet:")
    assert "missing keys (e.g. layer1.0.conv3.weight" in message
    assert "wrong shapes (e.g. layer1.0.conv1.weight: file (64, 64, 3, 3) vs model (64, 64, 1, 1)" in message


def test_a_reshaped_tensor_is_named_with_both_shapes(tmp_path):
    state = resnet18_state(seed=0)
    state["fc.weight"] = state["fc.weight"].reshape(512, 1000)
    torch.save(state, tmp_path / "w.pt")

    with pytest.raises(
        WeightsError, match=r"1 wrong shapes \(e.g. fc.weight: file \(512, 1000\) vs model \(1000, 512\)\)"
    ):
        featurizers.get("resnet18", str(tmp_path / "w.pt"))


def test_a_state_dict_missing_keys_is_refused(tmp_path):
    state = resnet18_state(seed=0)
    del state["fc.bias"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "w.pt")

    with pytest.raises(WeightsError, match=r"1 missing keys \(e.g. fc.bias\), 1 unexpected keys \(e.g. extra.weight\)"):
        featurizers.get("resnet18", str(tmp_path / "w.pt"))


def test_a_missing_weights_file_is_named(tmp_path):
    with pytest.raises(WeightsError, match=re.escape(f"Weights file {tmp_path / 'gone.pt'} does not exist.")):
        featurizers.get("vgg16", str(tmp_path / "gone.pt"))


def test_a_file_that_is_not_weights_says_it_cannot_be_loaded(tmp_path):
    (tmp_path / "notes.pt").write_text("these are not weights")

    with pytest.raises(WeightsError, match="notes.pt cannot be loaded as weights"):
        featurizers.get("resnet18", str(tmp_path / "notes.pt"))


class RunsCode:
    """Unpickling this runs a shell command: what a malicious weights file does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize(
    ("save", "message"),
    [
        (torch.save, "evil.pt is not a plain state dict: loading it would run code"),
        # Not a zip: refused before torch.load reads it (its legacy loader would allocate what the pickle declares).
        (lambda obj, path: path.write_bytes(pickle.dumps(obj, protocol=2)), "evil.pt cannot be loaded as weights"),
    ],
    ids=["torch.save", "pickle"],
)
def test_a_weights_file_that_runs_code_when_unpickled_is_refused_and_runs_nothing(tmp_path, save, message):
    marker = tmp_path / "pwned"
    save({"fc.weight": RunsCode(marker)}, tmp_path / "evil.pt")

    with pytest.raises(WeightsError, match=message):
        featurizers.get("resnet18", str(tmp_path / "evil.pt"))

    assert not marker.exists()


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch hub cache, and any download attempt fails the test."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_download(url, *args, **kwargs):
        raise AssertionError(f"a test must never download ({url})")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return tmp_path / "hub"


def test_imagenet_weights_not_cached_with_downloads_off_name_the_file_and_the_cache_folder(hub_dir):
    with pytest.raises(WeightsError) as caught:
        featurizers.get("resnet18", "imagenet")

    message = str(caught.value)
    assert "ImageNet weights for resnet18 are not cached and downloads are off" in message
    assert "put resnet18-f37072fd.pth" in message
    assert f"into {hub_dir / 'checkpoints'}/" in message
    assert "VSEARCH_ALLOW_DOWNLOADS=1" in message


def test_cached_imagenet_weights_are_loaded_from_the_cache_folder(hub_dir, tmp_path, images):
    # A stand-in for the real file, under the name torchvision expects (a cached file's hash is not checked).
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(resnet18_state(seed=6), hub_dir / "checkpoints" / "resnet18-f37072fd.pth")
    torch.save(resnet18_state(seed=6), tmp_path / "same.pt")

    from_cache = torchvision_featurizer("resnet18", "imagenet").embed(images)["penultimate"]
    from_file = torchvision_featurizer("resnet18", str(tmp_path / "same.pt")).embed(images)["penultimate"]

    # The same network; ImageNet weights bring torchvision's own resize, whose interpolation differs by ~0.5%.
    np.testing.assert_allclose(from_cache, from_file, rtol=2e-2, atol=2e-2)
    assert not np.allclose(from_cache, featurizers.get("resnet18", "none").embed(images)["penultimate"], rtol=0.1)
