"""Torchvision CNNs tapped at a named layer, with the preprocessing that belongs to their weights."""

from __future__ import annotations

import logging
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from PIL import Image
from torch import nn
from torchvision import models
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.transforms import v2 as T

from matching.featurizers.base import IMAGENET, UNTRAINED, FeaturizerSpec, Layer, WeightsError, register

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def standard_transform(size: int = 224, resize: int = 256) -> Callable[[Image.Image], torch.Tensor]:
    return T.Compose(
        [
            T.PILToTensor(),
            T.Resize(resize, antialias=True),
            T.CenterCrop(size),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def _imagenet_file(arch: str):
    enum = models.get_model_weights(arch).IMAGENET1K_V1
    filename = enum.url.rsplit("/", 1)[-1]
    return enum, filename, Path(torch.hub.get_dir()) / "checkpoints"


def imagenet_cached(arch: str) -> bool:
    """Whether torchvision's ImageNet file for `arch` is already on this machine (no download needed)."""
    _, filename, cache = _imagenet_file(arch)
    return (cache / filename).exists()


def imagenet_weights(arch: str):
    """torchvision's pretrained weights enum: cached file or download, else a clear error."""
    enum, filename, cache = _imagenet_file(arch)
    if not (cache / filename).exists() and not settings.VSEARCH_ALLOW_DOWNLOADS:
        raise WeightsError(
            f"ImageNet weights for {arch} are not cached and downloads are off: put {filename} "
            f"(from {enum.url}) into {cache}/ or set VSEARCH_ALLOW_DOWNLOADS=1."
        )
    try:
        state = enum.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # URLError, socket errors, hash mismatch: all mean "get the file by hand"
        raise WeightsError(
            f"ImageNet weights for {arch} could not be downloaded ({exc.__class__.__name__}: {exc}). "
            f"Offline? Put {filename} (from {enum.url}) into {cache}/ and build again."
        ) from None
    return enum, state


# The pickle that opens a checkpoint in PyTorch's legacy (pre-1.6) format: protocol 2, then its magic number.
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def check_torch_container(path: Path) -> None:
    """Refuse a .pt/.pth that would make torch.load allocate more than the file holds, before it is loaded.

    torch.save writes a zip of stored (uncompressed) records, so what torch.load allocates is what the file
    holds. A deflated record may expand a thousandfold (a 390 KB file loaded 400 MB), and the legacy format
    (anything not a zip) allocates each storage at the size its pickle declares (a 2 KB file allocated 400 MB)
    before reading it.
    """
    with path.open("rb") as fh:
        legacy = fh.read(len(LEGACY_TORCH_MAGIC)) == LEGACY_TORCH_MAGIC
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        if legacy:
            raise WeightsError(
                f"{path.name} is in PyTorch's legacy (pre-1.6) format, which is not accepted: load it and save it "
                "again with torch.save(model.state_dict(), path) from a current PyTorch."
            ) from None
        raise WeightsError(
            f"{path.name} cannot be loaded as weights: it is not a PyTorch checkpoint (the zip file that "
            "torch.save writes)."
        ) from None
    compressed = [r.filename for r in records if r.compress_type != zipfile.ZIP_STORED]
    if compressed:
        raise WeightsError(
            f"{path.name} has compressed records ({', '.join(compressed[:3])}); torch.save never compresses, and a "
            "compressed checkpoint may expand far past its size. Save it again with torch.save."
        )
    if sum(r.file_size for r in records) > path.stat().st_size:
        raise WeightsError(f"{path.name} declares records larger than the file: it is truncated or corrupt.")


def load_weights_file(path: str | Path) -> dict:
    """A state dict from .pt/.pth (never unpickling code: weights_only=True) or .safetensors."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"Weights file {path} does not exist.")
    if path.suffix != ".safetensors":
        check_torch_container(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc)
        if "GLOBAL" in text:
            # weights_only refused a pickle that names a callable: loading it would run code.
            detail = next((line.strip() for line in text.splitlines() if "GLOBAL" in line), "")
            raise WeightsError(
                f"{path.name} is not a plain state dict: loading it would run code, so it was refused ({detail}). "
                "Save it with torch.save(model.state_dict(), path)."
            ) from None
        if "Weights only load failed" in text:
            raise WeightsError(f"{path.name} cannot be loaded as weights: it is not a PyTorch checkpoint.") from None
        first_line = (text.splitlines() or [exc.__class__.__name__])[0]  # EOFError() has no message at all
        raise WeightsError(f"{path.name} cannot be loaded as weights: {first_line[:300]}") from None


def load_state_strict(model: nn.Module, state: dict, *, source: str) -> None:
    """load_state_dict(strict=True), with a short message a person can act on when keys or shapes differ."""
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise WeightsError(f"{source} does not hold a state dict of tensors.")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        problems.append(f"{len(wrong)} wrong shapes (e.g. {'; '.join(wrong[:3])})")
    if problems:
        raise WeightsError(f"{source} does not fit {model.__class__.__name__}: " + ", ".join(problems) + ".")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # right keys and shapes, but a tensor that cannot be copied in (complex, say)
        raise WeightsError(
            f"{source} does not fit {model.__class__.__name__}: {str(exc).splitlines()[-1][:300]}"
        ) from None


class TorchFeaturizer:
    """A network in eval mode with feature-extraction taps; `embed` runs under inference_mode."""

    def __init__(self, key: str, model: nn.Module, nodes: dict[str, str], dims: dict[str, int], transform):
        self.key = key
        self.layers = tuple(nodes)
        self._dims = dims
        self.transform = transform
        model.eval()
        for module in model.modules():
            # An in-place activation after a tapped layer would overwrite the tapped output (VGG's fc6 would
            # come out after its ReLU, all signs lost for Hamming).
            if hasattr(module, "inplace"):
                module.inplace = False
        self.extractor = create_feature_extractor(model, return_nodes={node: layer for layer, node in nodes.items()})
        # fp32 + channels_last (docs/BENCHMARKS.md, featurize): channels_last was 5-18% faster at batch 8 with
        # identical features. bf16 is about 2x faster on an AVX-512-BF16 CPU but moved 5-27% of Hamming
        # top-10 neighbours, and one feature set serves every metric.
        self.extractor = self.extractor.to(memory_format=torch.channels_last).eval()
        self._lock = threading.Lock()  # one forward at a time per process: torch already uses every core

    def dims(self) -> dict[str, int]:
        return dict(self._dims)

    def embed_batch(self, batch: torch.Tensor) -> dict[str, np.ndarray]:
        with self._lock, torch.inference_mode():
            out = self.extractor(batch.contiguous(memory_format=torch.channels_last))
        return {layer: out[layer].flatten(1).float().numpy().astype(np.float32, copy=False) for layer in self.layers}

    def embed(self, images: list[Image.Image]) -> dict[str, np.ndarray]:
        batch = torch.stack([self.transform(image.convert("RGB")) for image in images])
        return self.embed_batch(batch)


def torchvision_featurizer(arch: str, weights: str) -> TorchFeaturizer:
    """`weights`: 'imagenet', 'none' (random init, seeded) or a path to a state-dict file."""
    from matching.featurizers.base import REGISTRY

    spec = REGISTRY[arch]
    transform = standard_transform()
    if weights == IMAGENET:
        enum, state = imagenet_weights(arch)
        model = models.get_model(arch, weights=None)
        load_state_strict(model, state, source=f"ImageNet weights for {arch}")
        transform = enum.transforms()
    elif weights == UNTRAINED:
        # "Untrained" must still mean the same network every time, without reseeding the caller's RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = models.get_model(arch, weights=None)
    else:
        model = models.get_model(arch, weights=None)
        state = load_weights_file(weights)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]  # a training checkpoint that wraps the state dict
        load_state_strict(model, state, source=Path(weights).name)
    return TorchFeaturizer(
        arch,
        model,
        {layer.name: layer.node for layer in spec.layers},
        {layer.name: layer.dim for layer in spec.layers},
        transform,
    )


# fc6/fc7 are tapped before their ReLU (graph nodes classifier.0 and classifier.3), so sign-binarization for
# Hamming keeps information; the ResNets at the flattened pool output.
for _key, _description, _layers in (
    (
        "vgg16",
        "VGG16, fully connected layers",
        (Layer("fc6", "classifier.0", 4096), Layer("fc7", "classifier.3", 4096)),
    ),
    ("resnet18", "ResNet-18, penultimate layer", (Layer("penultimate", "flatten", 512),)),
    ("resnet50", "ResNet-50, penultimate layer", (Layer("penultimate", "flatten", 2048),)),
):
    register(
        FeaturizerSpec(
            key=_key,
            description=_description,
            layers=_layers,
            build=lambda spec, weights: torchvision_featurizer(spec.key, weights),
            sentinels=(UNTRAINED, IMAGENET),
            accepts_files=True,
        )
    )
