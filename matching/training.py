"""Retrain a backbone on the catalog's own categories: a new dense feature layer and a softmax head.

Starts from ImageNet weights where they are available (then only the new layers train: fast), otherwise
trains the whole network from random init at a small input size, which the demo catalog allows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2 as T

from matching.features import ItemImages
from matching.featurizers.base import WeightsError
from matching.featurizers.finetuned import DEFAULT_WEIGHTS, FineTuneNet, checkpoint
from matching.featurizers.torch_models import IMAGENET_MEAN, IMAGENET_STD, imagenet_weights
from matching.models import Item
from matching.pipeline import BuildError
from matching.storage import atomic_file, private_path

log = logging.getLogger(__name__)


@dataclass
class TrainReport:
    path: Path
    classes: list[str]
    train_items: int
    held_out_items: int
    held_out_accuracy: float
    pretrained: bool
    seconds: float


def _split(labels: np.ndarray, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split: each category keeps `held_out` of its items aside."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = max(1, int(round(len(members) * held_out))) if len(members) > 1 else 0
        test.extend(members[:cut])
        train.extend(members[cut:])
    return np.array(sorted(train)), np.array(sorted(test))


def train_featurizer(
    *,
    out: str = DEFAULT_WEIGHTS,
    backbone: str = "resnet18",
    input_size: int = 64,
    hidden_dim: int = 256,
    epochs: int = 12,
    batch_size: int = 64,
    lr: float = 2e-3,
    held_out: float = 0.2,
    pretrained: str = "auto",
    seed: int = 0,
    progress: Callable[[int, int, float, float], None] | None = None,
) -> TrainReport:
    """Train, report held-out accuracy, save weights (atomically) at `out` in the private build storage."""
    started = time.perf_counter()
    rows = list(Item.objects.order_by("id").values_list("id", "image", "bbox", "category"))
    classes = sorted({r[3] for r in rows})
    if len(classes) < 2:
        raise BuildError(f"Training needs at least two categories in the catalog; it has {len(classes)}.")
    labels = np.array([classes.index(r[3]) for r in rows])
    train_idx, test_idx = _split(labels, held_out, seed)

    torch.manual_seed(seed)
    model = FineTuneNet(backbone, hidden_dim, len(classes))
    use_pretrained = False
    if pretrained in {"auto", "imagenet"}:
        try:
            _, state = imagenet_weights(backbone)
            base_state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            model.backbone.load_state_dict(_as_sequential(base_state), strict=True)
            use_pretrained = True
        except WeightsError:
            if pretrained == "imagenet":
                raise
            log.info("no ImageNet weights for %s: training the whole network from random init", backbone)
    if use_pretrained:
        for parameter in model.backbone.parameters():
            parameter.requires_grad = False

    normalize = [T.ToDtype(torch.float32, scale=True), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    resize = int(round(input_size * 256 / 224))
    train_tf = T.Compose(
        [
            T.PILToTensor(),
            T.RandomResizedCrop(input_size, scale=(0.6, 1.0), antialias=True),
            T.RandomHorizontalFlip(),
            *normalize,
        ]
    )
    test_tf = T.Compose([T.PILToTensor(), T.Resize(resize, antialias=True), T.CenterCrop(input_size), *normalize])
    item_rows = [(r[0], r[1], r[2]) for r in rows]
    train_ds = _Labelled(ItemImages([item_rows[i] for i in train_idx], train_tf), labels[train_idx])
    test_ds = _Labelled(ItemImages([item_rows[i] for i in test_idx], test_tf), labels[test_idx])
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train_ds, batch_size=batch_size, shuffle=True, generator=generator)
    test_loader = DataLoader(test_ds, batch_size=256)

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=1e-4)
    steps = max(1, epochs * len(train_loader))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    accuracy = 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        if use_pretrained:
            model.backbone.eval()  # frozen batch-norm statistics stay ImageNet's
        total_loss = 0.0
        for images, targets in train_loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(images), targets)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(targets)
        accuracy = _accuracy(model, test_loader)
        if progress:
            progress(epoch, epochs, total_loss / len(train_ds), accuracy)

    target = private_path(out)
    with atomic_file(target) as tmp:
        torch.save(checkpoint(model, backbone=backbone, classes=classes, input_size=input_size, accuracy=accuracy), tmp)
    return TrainReport(
        target, classes, len(train_idx), len(test_idx), accuracy, use_pretrained, time.perf_counter() - started
    )


class _Labelled(torch.utils.data.Dataset):
    def __init__(self, images: ItemImages, labels: np.ndarray):
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], self.labels[i]


def _accuracy(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    right = total = 0
    with torch.inference_mode():
        for images, targets in loader:
            right += int((model(images).argmax(1) == targets).sum())
            total += len(targets)
    return right / max(1, total)


def _as_sequential(state: dict) -> dict:
    """torchvision ResNet keys (conv1.weight, layer1.0...) -> FineTuneNet.backbone's Sequential keys (0.weight...)."""
    order = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"]
    out = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        out[f"{order.index(head)}.{rest}"] = value
    return out
