"""The default variants the demo builds: Dope or Nope's comparison, plus a baseline and a control."""

from __future__ import annotations

from matching.featurizers import IMAGENET, REGISTRY, UNTRAINED
from matching.featurizers.torch_models import imagenet_cached

FINETUNED_WEIGHTS = REGISTRY["finetuned"].default_weights  # in the private storage; written by train_featurizer


def pretrained_or_untrained(arch: str) -> str:
    """'imagenet' when torchvision's file is already cached here, else 'none' (shown as untrained)."""
    return IMAGENET if imagenet_cached(arch) else UNTRAINED


def default_variants() -> list[dict]:
    vgg = pretrained_or_untrained("vgg16")
    resnet = pretrained_or_untrained("resnet18")
    return [
        {"metric": "random", "description": "Control: random catalog items as matches."},
        {"featurizer": "vgg16", "layer": "fc6", "weights": vgg, "metric": "l1"},
        {"featurizer": "vgg16", "layer": "fc6", "weights": vgg, "metric": "l2"},
        {"featurizer": "vgg16", "layer": "fc6", "weights": vgg, "metric": "hamming"},
        {"featurizer": "vgg16", "layer": "fc7", "weights": vgg, "metric": "l2"},
        {"featurizer": "vgg16", "layer": "fc7", "weights": vgg, "metric": "hamming"},
        {"featurizer": "resnet18", "layer": "penultimate", "weights": resnet, "metric": "cosine"},
        {
            "featurizer": "finetuned",
            "layer": "hidden",
            "weights": FINETUNED_WEIGHTS,
            "metric": "cosine",
            "description": "ResNet-18 retrained on the catalog's categories, 256-d feature layer.",
        },
        {"featurizer": "finetuned", "layer": "hidden", "weights": FINETUNED_WEIGHTS, "metric": "hamming"},
        {
            "featurizer": "colour-histogram",
            "layer": "hsv",
            "metric": "l1",
            "description": "Classical baseline: HSV colour histogram, no network.",
        },
    ]
