"""Featurizer throughput on this CPU: images/s per network, batch size, precision and memory format,
the share of the machine's dense-math peak each reaches, the cost of PNG decoding in a DataLoader, and how
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

MODELS = ("vgg16", "resnet18", "resnet50", "colour-histogram")  # every registered featurizer without a file
AGREE_METRICS = ("l1", "l2", "cosine", "hamming")
AGREE_K = 10
# "Neighbours unchanged": a feature set serves every metric (an upload makes one variant per metric), so a
# setting must keep top-10 neighbours under all four, up to the odd tie flipping.
MIN_OVERLAP = 0.99


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
SHIPPED = Setting("fp32", True)  # matching.featurizers.torch_models: fp32 weights and inputs in channels_last


class Runner:
    """A featurizer's extractor prepared for one setting; the copies (bf16 weights, channels_last) are shared."""

    def __init__(self, extractor: torch.nn.Module, setting: Setting, copies: dict):
        self.setting = setting
        form = (setting.precision == "bf16w", setting.channels_last)
        if form not in copies:
            # Every form is its own copy with an explicit weight layout: the featurizer ships its extractor in
            # channels_last, and a baseline that inherited it would not be plain fp32.
            model = copy.deepcopy(extractor)
            if form[0]:
                model = model.to(torch.bfloat16)
            model = model.to(memory_format=torch.channels_last if form[1] else torch.contiguous_format)
            # A deep-copied fx GraphModule comes back in training mode (BatchNorm would use batch statistics).
            copies[form] = model.eval()
        self.model = copies[form]

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.setting.precision == "bf16w":
            batch = batch.to(torch.bfloat16)
        if self.setting.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.setting.precision == "bf16"),
        ):
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


# Two probes of this CPU's dense throughput. torch.mm goes to MKL (which may take a narrower code path on
# non-Intel CPUs); a 3x3 convolution goes to oneDNN, the library the networks' convolutions actually use.
PROBES = ("torch.mm 2048³", "conv2d 3×3, 8×256×28×28")


def _probe(name: str, dtype: torch.dtype):
    if name.startswith("torch.mm"):
        a, b = torch.randn(2048, 2048).to(dtype), torch.randn(2048, 2048).to(dtype)
        return (lambda: torch.mm(a, b)), 2 * 2048**3
    x, w = torch.randn(8, 256, 28, 28).to(dtype), torch.randn(256, 256, 3, 3).to(dtype)
    return (lambda: torch.nn.functional.conv2d(x, w, padding=1)), 2 * 8 * 256 * 256 * 9 * 28 * 28


def peak_gflops(name: str, dtype: torch.dtype, *, min_seconds: float) -> float:
    """Best GFLOP/s of one probe over repeated calls."""
    run, flops = _probe(name, dtype)
    with torch.inference_mode():
        run()  # first call picks kernels and allocates
        best = float("inf")
        started = time.perf_counter()
        calls = 0
        while calls < 3 or time.perf_counter() - started < min_seconds:
            t0 = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t0)
            calls += 1
    return flops / best / 1e9


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
    from matching.index import ExactSearch, exact_distances, prepare

    a = prepare(base, metric)
    positions = np.arange(len(a))
    mine, _ = ExactSearch(metric).fit(other).neighbours(positions, k)
    truth, _ = ExactSearch(metric).fit(base).neighbours(positions, k)
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
    parser.add_argument(
        "--precisions", help="comma-separated from fp32,bf16,bf16w (default all three; quick fp32,bf16)"
    )
    parser.add_argument("--weights", default="none", help="none (random init, seeded) or imagenet when cached")
    parser.add_argument("--min-seconds", type=float, help="seconds per grid cell and round (default 1; quick 0.25)")
    parser.add_argument("--rounds", type=int, help="interleaved timing rounds, best kept (default 2)")
    parser.add_argument(
        "--agree-images", type=int, help="images for the bf16-vs-fp32 comparison (default 200; quick 32)"
    )
    parser.add_argument("--pipeline-images", type=int, help="images through the DataLoader (default 128; quick 32)")
    parser.add_argument(
        "--pipeline-batch", type=int, help="DataLoader batch size (default: VSEARCH_BATCH_SIZE, as builds use)"
    )
    args = parser.parse_args()
    q = args.quick
    models = (args.models or ("resnet18,colour-histogram" if q else ",".join(MODELS))).split(",")
    batch_sizes = [int(b) for b in (args.batch_sizes or ("1,8" if q else "1,8,32")).split(",")]
    precisions = (args.precisions or ("fp32,bf16" if q else "fp32,bf16,bf16w")).split(",")
    min_seconds = args.min_seconds or (0.25 if q else 1.0)
    rounds = args.rounds or 2
    n_agree = args.agree_images or (32 if q else 200)
    n_pipe = args.pipeline_images or (32 if q else 128)
    pipe_batch = args.pipeline_batch
    unknown = set(models) - set(MODELS)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}")
    if not set(precisions) <= {"fp32", "bf16", "bf16w"}:
        parser.error("--precisions takes fp32, bf16, bf16w")
    if "fp32" not in precisions:
        precisions.insert(0, "fp32")  # the baseline every other setting is compared with

    django_setup(data_dir=scratch_dir("featurize"))
    from django.conf import settings as django_settings

    from matching import featurizers

    pipe_batch = pipe_batch or django_settings.VSEARCH_BATCH_SIZE

    settings = [Setting(p, cl) for p in precisions for cl in (False, True)]
    threads = torch.get_num_threads()

    # Peak before and after the models, the better of the two: a busy moment lowers only one of them.
    dtypes = (torch.float32, torch.bfloat16)
    probed = {(p, d): peak_gflops(p, d, min_seconds=min_seconds * 2) for p in PROBES for d in dtypes}

    paths = demo_png_dir(max(n_agree, n_pipe, max(batch_sizes)))
    measured, pipe_rows, agree_rows, advice = [], [], [], []
    used_metrics = default_metrics()

    for key in models:
        t_model = time.perf_counter()
        featurizer = featurizers.get(key, args.weights)
        transform = featurizer.transform
        tensors = preprocess(paths[: max(n_agree, max(batch_sizes))], transform)
        if key == "colour-histogram":
            for bs in batch_sizes:
                batch = batch_of(tensors, bs)
                rate, _ = rate_loop(lambda b=batch, f=featurizer: len(f.embed_batch(b)["hsv"]), min_seconds=min_seconds)
                measured.append((key, bs, None, rate, None))
            runs = {"featurizer.embed_batch": featurizer.embed_batch}
            _pipeline(pipe_rows, key, runs, transform, paths[:n_pipe], pipe_batch, {})
            advice.append(
                f"- **{key}**: no network; the DataLoader's decoding is the whole cost (see the pipeline table)."
            )
            continue

        extractor = featurizer.extractor
        shape = tuple(tensors.shape[1:])
        flops = flops_per_image(extractor, shape)
        copies: dict = {}
        runners = {setting: Runner(extractor, setting, copies) for setting in settings}
        batches = {bs: batch_of(tensors, bs) for bs in batch_sizes}
        for runner in runners.values():
            for batch in batches.values():
                runner(batch)  # warm-up: oneDNN picks and caches kernels on the first call per shape
        # Rounds interleave the settings and keep each one's best rate, so a burst of load from other
        # processes penalises no setting in particular.
        forward_rate: dict[tuple[Setting, int], float] = {}
        for _ in range(rounds):
            for bs, batch in batches.items():
                for setting, runner in runners.items():
                    rate, _ = rate_loop(lambda b=batch, r=runner: (r(b), len(b))[1], min_seconds=min_seconds)
                    forward_rate[(setting, bs)] = max(rate, forward_rate.get((setting, bs), 0.0))
        measured += [
            (key, bs, setting, forward_rate[(setting, bs)], flops) for bs in batch_sizes for setting in settings
        ]
        agree_batch = tensors[:n_agree]
        features: dict[Setting, dict[str, np.ndarray]] = {}
        for setting, runner in runners.items():
            chunks = [runner(agree_batch[i : i + 32]) for i in range(0, len(agree_batch), 32)]
            features[setting] = {layer: torch.cat([c[layer] for c in chunks]).numpy() for layer in featurizer.layers}

        # Agreement of every setting with fp32 (channels_last alone should agree to float noise).
        worst: dict[Setting, float] = {BASELINE: 1.0}
        metrics = list(AGREE_METRICS)
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
                    (
                        f"{key}/{layer}",
                        setting.label,
                        f"{cos.mean():.5f}",
                        f"{cos.min():.5f}",
                        *[overlaps[m] for m in AGREE_METRICS],
                    )
                )

        best_setting, best_bs = max(
            ((s, bs) for s in settings for bs in batch_sizes if worst[s] >= MIN_OVERLAP),
            key=lambda sb: forward_rate[sb],
        )
        fp32_rate = forward_rate[(BASELINE, best_bs)]
        fastest, fastest_bs = max(((s, bs) for s in settings for bs in batch_sizes), key=lambda sb: forward_rate[sb])
        best_rate, fastest_rate = forward_rate[(best_setting, best_bs)], forward_rate[(fastest, fastest_bs)]
        defaults = ", ".join(sorted(used_metrics.get(key, ()))) or "none of them: no default variant"
        advice.append(
            f"- **{key}**: fastest setting with top-{AGREE_K} overlap ≥ {MIN_OVERLAP} under every metric "
            f"({', '.join(metrics)}; the default variants use {defaults}): **{best_setting.label}, batch {best_bs}**, "
            f"{best_rate:.1f} img/s vs plain fp32 {fp32_rate:.1f} img/s (×{best_rate / fp32_rate:.2f}); worst "
            f"overlap {worst[best_setting]:.3f}. Fastest of all: {fastest.label}, batch {fastest_bs}, "
            f"{fastest_rate:.1f} img/s, worst overlap {worst[fastest]:.3f}."
        )
        # The build pipeline's own call (fp32, as shipped), beside the recommended setting if that differs.
        runs = {"featurizer.embed_batch": featurizer.embed_batch}
        forwards = {"featurizer.embed_batch": forward_rate.get((SHIPPED, pipe_batch))}
        if best_setting != BASELINE:
            runs[best_setting.label] = runners[best_setting]
            forwards[best_setting.label] = forward_rate.get((best_setting, pipe_batch))
        _pipeline(pipe_rows, key, runs, transform, paths[:n_pipe], pipe_batch, forwards)
        del runners, copies, runs, features
        emit(f"<!-- {key}: {time.perf_counter() - t_model:.1f} s -->")

    for key_ in probed:
        probed[key_] = max(probed[key_], peak_gflops(*key_, min_seconds=min_seconds * 2))
    peak = {d: max(probed[(p, d)] for p in PROBES) for d in dtypes}
    heading(f"Dense throughput of this machine ({threads} threads, best of a run before and after the models)")
    emit(table(["probe", "fp32 GFLOP/s", "bf16 GFLOP/s"], [(p, *(probed[(p, d)] for d in dtypes)) for p in PROBES]))
    emit("\n'of peak' below is against the better probe of the same dtype.")
    grid_rows = []
    for key, bs, setting, rate, flops in measured:
        if setting is None:
            grid_rows.append((key, bs, "no network", rate, fmt_seconds(bs / rate), None, None))
            continue
        gflops = rate * flops / 1e9
        top = peak[torch.float32 if setting.precision == "fp32" else torch.bfloat16]
        grid_rows.append((key, bs, setting.label, rate, fmt_seconds(bs / rate), gflops, f"{100 * gflops / top:.0f}%"))
    heading(
        f"Forward pass only (preprocessed tensors in memory; weights: {args.weights}; "
        f"best of {rounds} interleaved rounds)"
    )
    emit(table(["featurizer", "batch", "setting", "img/s", "per batch", "GFLOP/s", "of peak"], grid_rows))
    heading(
        f"End to end: PNG decode + preprocessing in a DataLoader, then the forward "
        f"({n_pipe} images, batch {pipe_batch})"
    )
    emit(
        table(
            [
                "featurizer",
                "run",
                "num_workers",
                "img/s end to end",
                "decode+preprocess alone img/s",
                "forward alone img/s",
            ],
            pipe_rows,
        )
    )
    if agree_rows:
        heading(f"Agreement with fp32 on {n_agree} demo images (top-{AGREE_K} overlap, ties count)")
        emit(
            table(
                ["features", "setting", "mean cosine", "min cosine", *[f"top-10 {m}" for m in AGREE_METRICS]],
                agree_rows,
            )
        )
    heading("Recommendation")
    emit("\n".join(advice))


def _pipeline(rows, key, runs: dict, transform, paths, batch_size, forwards: dict) -> None:
    """End-to-end rate through a DataLoader for num_workers 0 and 1, and decoding alone for comparison.

    `runs` maps a label to a callable on a batch; "featurizer.embed_batch" is the build pipeline's own call.
    """
    for workers in (0, 1):
        loader = DataLoader(Pngs(paths, transform), batch_size=batch_size, num_workers=workers)
        t0 = time.perf_counter()
        n = sum(len(b) for b in loader)
        decode_rate = n / (time.perf_counter() - t0)
        for label, run in runs.items():
            t0 = time.perf_counter()
            n = 0
            for batch in loader:
                run(batch)
                n += len(batch)
            rows.append((key, label, workers, n / (time.perf_counter() - t0), decode_rate, forwards.get(label)))


if __name__ == "__main__":
    main()
