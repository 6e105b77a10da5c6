"""The catalog-trained network: a backbone's convolutional layers, a new dense feature layer, a softmax head.

As Dope or Nope's best model was retrained on DeepFashion, `manage.py train_featurizer` retrains one on
the catalog's own categories; the file it writes carries its architecture, so a variant needs only the path.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision import models

from matching.featurizers.base import SENTINELS, FeaturizerSpec, Layer, WeightsError, register
from matching.featurizers.torch_models import TorchFeaturizer, load_state_strict, load_weights_file, standard_transform

BACKBONES = {"resnet18": 512, "resnet50": 2048}
FORMAT = "vsearch-finetuned-1"
DEFAULT_WEIGHTS = "weights/finetuned-resnet18.pt"  # in the private storage; written by train_featurizer


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


def finetuned_featurizer(weights: str) -> TorchFeaturizer:
    if weights in SENTINELS:
        raise WeightsError("The fine-tuned featurizer needs the weights file written by `manage.py train_featurizer`.")
    data = read_checkpoint(weights)
    model = FineTuneNet(data["backbone"], int(data["hidden_dim"]), len(data["classes"]))
    load_state_strict(model, data["state_dict"], source=Path(weights).name)
    size = int(data["input_size"])
    return TorchFeaturizer(
        "finetuned",
        model,
        {"hidden": "hidden"},
        {"hidden": int(data["hidden_dim"])},
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
