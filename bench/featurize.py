"""Featurizer throughput on this CPU: images/s per network, batch size, precision and memory format,
the share of the machine's matmul peak each reaches, the cost of PNG decoding in a DataLoader, and how
far bf16 features drift from fp32 ones (cosine, top-10 neighbours).

    .venv/bin/python -m bench.featurize [--quick] [--models vgg16,resnet18,resnet50,colour-histogram]
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from bench.common import django_setup, emit, fmt_seconds, heading, rate_loop, scratch_dir, table
from bench.data import demo_png_dir

MODELS = ("vgg16", "resnet18", "resnet50", "colour-histogram")
LAYERS = {"vgg16": ("fc6", "fc7"), "resnet18": ("penultimate",), "resnet50": ("penultimate",), "colour-histogram": ("hsv",)}
AGREE_METRICS = ("l1", "l2", "cosine", "hamming")
AGREE_K = 10
MIN_OVERLAP = 0.9


@dataclass(frozen=True)
class Setting:
    """How a network runs: fp32; bf16 via autocast (weights cast per call); bf16w (weights stored in bf16)."""

    precision: str
    channels_last: bool

    @property
    def label(self) -> str:
        names = {"fp32": "fp32", "bf16": "bf16 autocast", "bf16w": "bf16 weights"}
        return names[self.precision] + (" + channels_last" if self.channels_last else "")

    @property
    def low_precision(self) -> bool:
        return self.precision != "fp32"


BASELINE = Setting("fp32", False)


class Runner:
    """A featurizer's torchvision extractor prepared for one setting (a copy when the setting changes weights)."""

    def __init__(self, extractor: torch.nn.Module, setting: Setting):
        self.setting = setting
        model = extractor
        if setting.precision == "bf16w":
            model = copy.deepcopy(model).to(torch.bfloat16)
        if setting.channels_last:
            model = (copy.deepcopy(model) if model is extractor else model).to(memory_format=torch.channels_last)
        # A deep-copied fx GraphModule comes back in training mode (BatchNorm would use batch statistics).
        self.model = model.eval()

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.setting.precision == "bf16w":
            batch = batch.to(torch.bfloat16)
        if self.setting.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.setting.precision == "bf16"):
            out = self.model(batch)
        return {layer: value.flatten(1).float() for layer, value in out.items()}


class Pngs(Dataset):
    """PNG files through a featurizer's transform, as the build pipeline's ItemImages does."""

    def __init__(self, paths: list[Path], transform):
        self.paths = paths
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB"))


def matmul_peak(dtype: torch.dtype, *, n: int, min_seconds: float) -> float:
    """Best GFLOP/s of an n x n x n torch.mm over repeated calls (2 n^3 FLOPs each)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.mm(a, b)  # first call picks kernels and allocates
    best = float("inf")
    started = time.perf_counter()
    calls = 0
    while calls < 3 or time.perf_counter() - started < min_seconds:
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
        calls += 1
    return 2 * n**3 / best / 1e9


def flops_per_image(extractor: torch.nn.Module, shape: tuple[int, ...]) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        extractor(torch.zeros((1, *shape)))
    return counter.get_total_flops()


def preprocess(paths: list[Path], transform) -> torch.Tensor:
    return torch.stack([Pngs(paths, transform)[i] for i in range(len(paths))])


def batch_of(tensors: torch.Tensor, size: int) -> torch.Tensor:
    reps = -(-size // len(tensors))
    return tensors.repeat((reps,) + (1,) * (tensors.dim() - 1))[:size].contiguous()


def neighbour_overlap(base: np.ndarray, other: np.ndarray, metric: str, k: int) -> float:
    """Share of `other`'s top-k that are at least as close, in `base`'s space, as base's own k-th (ties count)."""
    from matching.evaluation import recall_with_ties
    from matching.index import exact_distances, exact_neighbours, prepare

    a, b = prepare(base, metric), prepare(other, metric)
    positions = np.arange(len(a))
    mine = exact_neighbours(b, metric, positions, k)
    truth = exact_neighbours(a, metric, positions, k)
    d = exact_distances(a, a, metric)
    kth = d[positions, truth[:, -1]]
    found = np.take_along_axis(d, mine, axis=1)
    return recall_with_ties(found, kth, k)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(na * nb, 1e-12)


def default_metrics() -> dict[str, set[str]]:
    """The metrics the demo's default variants use per featurizer (the ones a setting must not break)."""
    from matching.defaults import default_variants

    used: dict[str, set[str]] = {}
    for v in default_variants():
        if "featurizer" in v:
            used.setdefault(v["featurizer"], set()).add(v["metric"])
    return used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: about half a minute")
    parser.add_argument("--models", help=f"comma-separated, from {','.join(MODELS)}")
    parser.add_argument("--batch-sizes", help="comma-separated (default 1,8,32; quick 1,8)")
    parser.add_argument("--precisions", help="comma-separated from fp32,bf16,bf16w (default all three; quick fp32,bf16)")
    parser.add_argument("--weights", default="none", help="none (random init, seeded) or imagenet when cached")
    parser.add_argument("--min-seconds", type=float, help="time each grid cell at least this long (default 2; quick 0.3)")
    parser.add_argument("--agree-images", type=int, help="images for the bf16-vs-fp32 comparison (default 200; quick 48)")
    parser.add_argument("--pipeline-images", type=int, help="images through the DataLoader (default 192; quick 32)")
    parser.add_argument("--pipeline-batch", type=int, help="DataLoader batch size (default 32 as VSEARCH_BATCH_SIZE; quick 8)")
    args = parser.parse_args()
    q = args.quick
    models = (args.models or ("resnet18,colour-histogram" if q else ",".join(MODELS))).split(",")
    batch_sizes = [int(b) for b in (args.batch_sizes or ("1,8" if q else "1,8,32")).split(",")]
    precisions = (args.precisions or ("fp32,bf16" if q else "fp32,bf16,bf16w")).split(",")
    min_seconds = args.min_seconds or (0.3 if q else 2.0)
    n_agree = args.agree_images or (48 if q else 200)
    n_pipe = args.pipeline_images or (32 if q else 192)
    pipe_batch = args.pipeline_batch or (8 if q else 32)
    unknown = set(models) - set(MODELS)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}")

    django_setup(data_dir=scratch_dir("featurize"))
    from matching import featurizers

    settings = [Setting(p, cl) for p in precisions for cl in (False, True)]
    threads = torch.get_num_threads()

    heading(f"Matmul peak of this machine (torch.mm 2048², {threads} threads)")
    peak = {"fp32": matmul_peak(torch.float32, n=2048, min_seconds=min_seconds * 3)}
    peak["bf16"] = matmul_peak(torch.bfloat16, n=2048, min_seconds=min_seconds * 3)
    peak["bf16w"] = peak["bf16"]
    emit(table(["dtype", "GFLOP/s"], [("fp32", peak["fp32"]), ("bf16", peak["bf16"])]))

    paths = demo_png_dir(max(n_agree, n_pipe, max(batch_sizes)))
    grid_rows, pipe_rows, agree_rows, advice = [], [], [], []
    used_metrics = default_metrics()

    for key in models:
        t_model = time.perf_counter()
        featurizer = featurizers.get(key, args.weights)
        transform = featurizer.transform
        tensors = preprocess(paths[: max(n_agree, max(batch_sizes))], transform)
        if key == "colour-histogram":
            for bs in batch_sizes:
                batch = batch_of(tensors, bs)
                rate, _ = rate_loop(lambda b=batch: len(featurizer.embed_batch(b)["hsv"]), min_seconds=min_seconds)
                grid_rows.append((key, bs, "fp32 (no network)", rate, fmt_seconds(bs / rate), None, None))
            _pipeline(pipe_rows, key, featurizer.embed_batch, None, transform, paths[:n_pipe], pipe_batch, {})
            advice.append(f"- **{key}**: no network; the DataLoader's decoding is the whole cost (see the pipeline table).")
            continue

        extractor = featurizer.extractor
        shape = tuple(tensors.shape[1:])
        flops = flops_per_image(extractor, shape)
        forward_rate: dict[tuple[Setting, int], float] = {}
        features: dict[Setting, dict[str, np.ndarray]] = {}
        agree_batch = tensors[:n_agree]
        for setting in settings:
            runner = Runner(extractor, setting)
            for bs in batch_sizes:
                batch = batch_of(tensors, bs)
                runner(batch)  # warm-up: oneDNN picks and caches kernels on the first call per shape
                rate, _ = rate_loop(lambda b=batch, r=runner: (r(b), len(b))[1], min_seconds=min_seconds)
                forward_rate[(setting, bs)] = rate
                gflops = rate * flops / 1e9
                grid_rows.append(
                    (key, bs, setting.label, rate, fmt_seconds(bs / rate), gflops, f"{100 * gflops / peak[setting.precision]:.0f}%")
                )
            chunks = [runner(agree_batch[i : i + 32]) for i in range(0, len(agree_batch), 32)]
            features[setting] = {layer: torch.cat([c[layer] for c in chunks]).numpy() for layer in featurizer.layers}
            del runner

        # Agreement of every setting with fp32 (channels_last alone should agree to float noise).
        worst: dict[Setting, float] = {BASELINE: 1.0}
        metrics = sorted(used_metrics.get(key, {"cosine"}))
        for setting in settings:
            if setting == BASELINE:
                continue
            worst[setting] = 1.0
            for layer in featurizer.layers:
                base, other = features[BASELINE][layer], features[setting][layer]
                cos = cosines(base, other)
                overlaps = {m: neighbour_overlap(base, other, m, AGREE_K) for m in AGREE_METRICS}
                worst[setting] = min([worst[setting]] + [overlaps[m] for m in metrics])
                agree_rows.append(
                    (f"{key}/{layer}", setting.label, float(cos.mean()), float(cos.min()),
                     *[overlaps[m] for m in AGREE_METRICS])
                )

        best_setting, best_bs = max(
            ((s, bs) for s in settings for bs in batch_sizes if worst[s] >= MIN_OVERLAP),
            key=lambda sb: forward_rate[sb],
        )
        fp32_rate = forward_rate[(BASELINE, best_bs)]
        advice.append(
            f"- **{key}**: fastest setting with top-10 overlap ≥ {MIN_OVERLAP} on its default metrics "
            f"({', '.join(metrics)}): **{best_setting.label}, batch {best_bs}**, "
            f"{forward_rate[(best_setting, best_bs)]:.1f} img/s vs fp32 {fp32_rate:.1f} img/s "
            f"(×{forward_rate[(best_setting, best_bs)] / fp32_rate:.2f}); worst overlap {worst[best_setting]:.3f}."
        )
        variants = {BASELINE: Runner(extractor, BASELINE)}
        if best_setting != BASELINE:
            variants[best_setting] = Runner(extractor, best_setting)
        forwards = {s: forward_rate.get((s, pipe_batch)) for s in variants}
        _pipeline(pipe_rows, key, None, variants, transform, paths[:n_pipe], pipe_batch, forwards)
        del variants, features
        emit(f"<!-- {key}: {time.perf_counter() - t_model:.1f} s -->")

    heading(f"Forward pass only (preprocessed tensors in memory; weights: {args.weights})")
    emit(table(["featurizer", "batch", "setting", "img/s", "per batch", "GFLOP/s", "of peak"], grid_rows))
    heading(f"End to end: PNG decode + preprocessing in a DataLoader, then the forward ({n_pipe} images, batch {pipe_batch})")
    emit(table(["featurizer", "setting", "num_workers", "img/s end to end", "decode+preprocess alone img/s",
                "forward alone img/s"], pipe_rows))
    if agree_rows:
        heading(f"Agreement with fp32 on {n_agree} demo images (top-{AGREE_K} overlap, ties count)")
        emit(table(["features", "setting", "mean cosine", "min cosine", *[f"top-10 {m}" for m in AGREE_METRICS]],
                   agree_rows))
    heading("Recommendation")
    emit("\n".join(advice))


def _pipeline(rows, key, embed_batch, runners, transform, paths, batch_size, forwards) -> None:
    """End-to-end rate through a DataLoader for num_workers 0 and 1, and decoding alone for comparison."""
    for workers in (0, 1):
        loader = DataLoader(Pngs(paths, transform), batch_size=batch_size, num_workers=workers)
        t0 = time.perf_counter()
        n = sum(len(b) for b in loader)
        decode_rate = n / (time.perf_counter() - t0)
        for setting, runner in (runners or {None: None}).items():
            t0 = time.perf_counter()
            n = 0
            for batch in loader:
                if runner is None:
                    embed_batch(batch)
                else:
                    runner(batch)
                n += len(batch)
            rate = n / (time.perf_counter() - t0)
            forward = forwards.get(setting) if setting is not None else None
            rows.append((key, setting.label if setting else "—", workers, rate, decode_rate, forward))


if __name__ == "__main__":
    main()
