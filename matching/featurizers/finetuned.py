"""The catalog-trained network: a backbone's convolutional layers, a new dense feature layer, a softmax head.

As Dope or Nope's best model was retrained on DeepFashion, `manage.py train_featurizer` retrains one on
the catalog's own categories; the file it writes carries its architecture, so a variant needs only the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision import models

from matching.featurizers.base import SENTINELS, FeaturizerSpec, Layer, WeightsError, register
from matching.featurizers.torch_models import TorchFeaturizer, load_state_strict, load_weights_file, standard_transform

BACKBONES = {"resnet18": 512, "resnet50": 2048}
FORMAT = "vsearch-finetuned-1"
DEFAULT_WEIGHTS = "weights/finetuned-resnet18.pt"  # in the private storage; written by train_featurizer
# Bounds on a checkpoint's metadata. The feature layer may be as wide as an uploaded embedding (uploads.MAX_DIM);
# below 32 px the ResNets' five halvings leave nothing to pool; 1024 px has 21x the pixels of ImageNet's 224.
MAX_HIDDEN_DIM = 16384
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 32, 1024


class FineTuneNet(nn.Module):
    def __init__(self, backbone: str, hidden_dim: int, n_classes: int):
        super().__init__()
        if backbone not in BACKBONES:
            raise WeightsError(f"Unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}.")
        base = models.get_model(backbone, weights=None)
        self.backbone = nn.Sequential(*list(base.children())[:-1], nn.Flatten(1))
        self.hidden = nn.Linear(BACKBONES[backbone], hidden_dim)
        self.act = nn.ReLU(inplace=False)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(hidden_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.act(self.hidden(self.backbone(x)))))


def checkpoint(model: FineTuneNet, *, backbone: str, classes: list[str], input_size: int, accuracy: float) -> dict:
    """What train_featurizer saves: only tensors, strings and numbers, so weights_only loading works."""
    return {
        "format": FORMAT,
        "backbone": backbone,
        "hidden_dim": model.hidden.out_features,
        "classes": list(classes),
        "input_size": input_size,
        "held_out_accuracy": float(accuracy),
        "state_dict": model.state_dict(),
    }


def read_checkpoint(path: str | Path) -> dict:
    data = load_weights_file(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise WeightsError(
            f"{Path(path).name} is not a fine-tuned network from `manage.py train_featurizer` "
            "(for plain torchvision weights pick that architecture instead)."
        )
    return data


@dataclass(frozen=True)
class Architecture:
    """What a checkpoint says its network is, checked: the network is built from this, never from raw metadata."""

    backbone: str
    hidden_dim: int
    n_classes: int
    input_size: int


def _whole(value, name: str, low: int, high: int, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise WeightsError(f"{source}: {name} is {value!r}, not a whole number in {low}..{high:,}.")
    return value


def checked_architecture(data: dict, *, source: str) -> Architecture:
    """The checkpoint's metadata in sane ranges and matching its tensors' shapes, before any network is built.

    Building first would trust the metadata: a 1.5 KB file declaring hidden_dim=100000 allocated 242 MB.
    """
    backbone = data.get("backbone")
    if backbone not in BACKBONES:
        raise WeightsError(f"{source}: backbone is {backbone!r}; it must be one of {', '.join(BACKBONES)}.")
    hidden_dim = _whole(data.get("hidden_dim"), "hidden_dim", 1, MAX_HIDDEN_DIM, source)
    input_size = _whole(data.get("input_size"), "input_size", MIN_INPUT_SIZE, MAX_INPUT_SIZE, source)
    classes = data.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise WeightsError(f"{source}: classes must be a list of at least two category names.")
    state = data.get("state_dict")
    if not isinstance(state, dict):
        raise WeightsError(f"{source} has no state_dict of tensors.")
    expected = {
        "hidden.weight": (hidden_dim, BACKBONES[backbone]),
        "hidden.bias": (hidden_dim,),
        "head.weight": (len(classes), hidden_dim),
        "head.bias": (len(classes),),
    }
    for key, shape in expected.items():
        tensor = state.get(key)
        if not isinstance(tensor, torch.Tensor):
            raise WeightsError(f"{source}: the state_dict has no tensor {key}.")
        if tuple(tensor.shape) != shape:
            raise WeightsError(
                f"{source}: {key} is {tuple(tensor.shape)}, but backbone={backbone}, hidden_dim={hidden_dim} and "
                f"{len(classes)} classes make it {shape}."
            )
    return Architecture(backbone=backbone, hidden_dim=hidden_dim, n_classes=len(classes), input_size=input_size)


def finetuned_featurizer(weights: str) -> TorchFeaturizer:
    if weights in SENTINELS:
        raise WeightsError("The fine-tuned featurizer needs the weights file written by `manage.py train_featurizer`.")
    data = read_checkpoint(weights)
    source = Path(weights).name
    arch = checked_architecture(data, source=source)
    model = FineTuneNet(arch.backbone, arch.hidden_dim, arch.n_classes)
    load_state_strict(model, data["state_dict"], source=source)
    size = arch.input_size
    return TorchFeaturizer(
        "finetuned",
        model,
        {"hidden": "hidden"},
        {"hidden": arch.hidden_dim},
        standard_transform(size=size, resize=int(round(size * 256 / 224))),
    )


SPEC = register(
    FeaturizerSpec(
        key="finetuned",
        description="ResNet fine-tuned on the catalog's categories",
        layers=(Layer("hidden", "hidden"),),  # its width is the checkpoint's hidden_dim
        build=lambda spec, weights: finetuned_featurizer(weights),
        sentinels=(),
        accepts_files=True,
        default_weights=DEFAULT_WEIGHTS,
    )
)
