"""Annoy against brute force per metric and catalog size: build time, file size, time for every item's
top-10, recall@10, and the same top-10 by exact search in numpy (matching.index) and in torch.

Real vectors are the first 1000 demo images through untrained ResNet-18 (and VGG16 fc6 in full mode),
cached under /tmp; bigger catalogs are a Gaussian mixture with the real features' per-dimension mean and
spread (clusters of about 20), so every item has near neighbours as catalog items do.

    .venv/bin/python -m bench.index [--quick] [--sizes 1000,10000,100000] [--big]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from annoy import AnnoyIndex

from bench.common import django_setup, emit, fmt_bytes, fmt_seconds, heading, scratch_dir, table

METRICS = ("l1", "l2", "hamming", "cosine")
K = 10
TARGET_RECALL = 0.95
CLUSTER = 20  # items per synthetic cluster: a catalog's near-duplicates (colourways, poses)


@dataclass
class Dataset:
    label: str
    real: bool
    vectors: np.ndarray

    @property
    def n(self) -> int:
        return self.vectors.shape[0]

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]


def synthetic(n: int, dim: int, *, like: np.ndarray | None, seed: int) -> np.ndarray:
    """Gaussian mixture; with `like`, scaled to its per-dimension mean and standard deviation."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // CLUSTER), dim), dtype=np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 10_000):  # chunks keep the temporaries small at 100k x 4096
        stop = min(n, start + 10_000)
        labels = rng.integers(0, len(centres), stop - start)
        out[start:stop] = centres[labels] + 0.5 * rng.standard_normal((stop - start, dim), dtype=np.float32)
    if like is not None:
        out *= like.std(0, keepdims=True)
        out += like.mean(0, keepdims=True)
    return out


# ---------------------------------------------------------------------------------------- exact search


def numpy_distances(q: np.ndarray, v: np.ndarray, metric: str) -> np.ndarray:
    """The previous matching.index.exact_distances: numpy's matrix multiply (L1 was already torch.cdist)."""
    if metric == "l2":
        return np.sqrt(np.maximum((q * q).sum(1)[:, None] + (v * v).sum(1)[None, :] - 2.0 * q @ v.T, 0.0))
    if metric == "cosine":
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        vn = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        return np.sqrt(np.maximum(2.0 - 2.0 * (qn @ vn.T), 0.0))
    if metric == "hamming":
        return q @ (1.0 - v).T + (1.0 - q) @ v.T
    return torch.cdist(torch.from_numpy(q), torch.from_numpy(v), p=1).numpy()


def numpy_neighbours(prepared: np.ndarray, metric: str, positions: np.ndarray, k: int) -> np.ndarray:
    out = []
    for start in range(0, len(positions), 256):
        chunk = positions[start : start + 256]
        d = numpy_distances(prepared[chunk], prepared, metric)
        d[np.arange(len(chunk)), chunk] = np.inf
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        out.append(np.take_along_axis(part, np.take_along_axis(d, part, axis=1).argsort(axis=1), axis=1))
    return np.concatenate(out)


def timed_all_items(run, n: int, *, budget: float, chunk: int) -> tuple[float, bool]:
    """Seconds for `run(positions)` over all n items; past `budget`, extrapolated from the chunks done."""
    done = 0
    started = time.perf_counter()
    while done < n:
        run(np.arange(done, min(n, done + chunk)))
        done = min(n, done + chunk)
        if time.perf_counter() - started > budget:
            break
    elapsed = time.perf_counter() - started
    return elapsed * n / done, done < n


# ---------------------------------------------------------------------------------------- the bench


def bench_dataset(data: Dataset, metric: str, *, trees, search_ks, sample: int, budget: float, workdir: Path):
    from matching import index
    from matching.evaluation import recall_with_ties

    prepared = index.prepare(data.vectors, metric)
    n = data.n
    rng = np.random.default_rng(1)
    queries = np.sort(rng.choice(n, size=min(sample, n), replace=False))

    chunk = 8 if metric == "l1" else 256
    exact = index.ExactSearch(metric).fit(data.vectors)
    t_torch, est_torch = timed_all_items(lambda p: exact.neighbours(p, K), n, budget=budget, chunk=chunk)
    t_numpy, est_numpy = timed_all_items(
        lambda p: numpy_neighbours(prepared, metric, p, K), n, budget=budget, chunk=chunk
    )
    # Truth for recall on the sampled queries: k-th exact distance and a distance row to look found items up in.
    rows = index.exact_distances(prepared[queries], prepared, metric)
    rows[np.arange(len(queries)), queries] = np.inf
    kth = np.partition(rows, K - 1, axis=1)[:, K - 1]
    exact_row = (data.label, n, data.dim, metric, t_numpy, est_numpy, t_torch, est_torch)

    annoy_rows = []
    for n_trees in trees:
        path = workdir / f"{metric}-{n}-{data.dim}-{n_trees}.ann"
        t0 = time.perf_counter()
        index.AnnoySearch(metric, n_trees=n_trees, seed=0).fit(data.vectors).save(path)
        build_s = time.perf_counter() - t0
        size = path.stat().st_size
        # Not AnnoySearch.load: its per-process cache would keep every unlinked file mapped.
        ann = AnnoyIndex(data.dim, index.ANNOY_METRIC[metric])
        ann.load(str(path))
        searcher = index.AnnoySearch(metric, n_trees=n_trees)
        searcher.annoy = ann
        for search_k in search_ks:
            searcher.set_query_arguments(search_k)
            found = np.full((len(queries), K), np.inf)
            top, _ = searcher.neighbours(queries, K)
            for r in range(len(queries)):
                ids = [i for i in top[r] if i >= 0]
                found[r, : len(ids)] = rows[r, ids]
            recall = recall_with_ties(found, kth, K)
            t_ann, est_ann = timed_all_items(lambda p, s=searcher: s.neighbours(p, K), n, budget=budget, chunk=500)
            annoy_rows.append(
                {
                    "data": data.label,
                    "n": n,
                    "dim": data.dim,
                    "metric": metric,
                    "n_trees": n_trees,
                    "search_k": search_k,
                    "build": build_s,
                    "size": size,
                    "query": t_ann,
                    "est": est_ann,
                    "recall": recall,
                    "exact": t_torch,
                    "real": data.real,
                }
            )
        ann.unload()
        path.unlink()
        path.with_suffix(".json").unlink(missing_ok=True)
    return exact_row, annoy_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k items, 512-d only: under a minute once cached")
    parser.add_argument("--sizes", help="catalog sizes (default 1000,10000,100000; quick 1000,10000)")
    parser.add_argument("--metrics", default=",".join(METRICS))
    parser.add_argument("--trees", help="n_trees values (default 10,20,50)")
    parser.add_argument(
        "--search-k", help="search_k values, -1 = Annoy's default n_trees*(k+1) (default -1,2000,10000; quick -1,2000)"
    )
    parser.add_argument("--real", type=int, default=1000, help="demo images featurized for the real vectors")
    parser.add_argument("--no-4096", action="store_true", help="skip the 4096-d (VGG-sized) runs of full mode")
    parser.add_argument("--big", action="store_true", help="also 100k x 4096 (1.6 GB of vectors)")
    parser.add_argument("--sample", type=int, help="queries for recall (default 500; quick 300)")
    parser.add_argument("--budget", type=float, help="seconds per timing before extrapolating (default 5; quick 0.5)")
    args = parser.parse_args()
    q = args.quick
    sizes = [int(s) for s in (args.sizes or ("1000,10000" if q else "1000,10000,100000")).split(",")]
    metrics = args.metrics.split(",")
    trees = [int(t) for t in (args.trees or "10,20,50").split(",")]
    search_ks = [int(s) for s in (args.search_k or ("-1,2000" if q else "-1,2000,10000")).split(",")]
    sample = args.sample or (300 if q else 500)
    budget = args.budget or (0.5 if q else 5.0)
    with_4096 = not q and not args.no_4096

    django_setup(data_dir=scratch_dir("index"))
    from bench.data import demo_features

    t0 = time.perf_counter()
    real512 = demo_features("resnet18", "penultimate", args.real)
    emit(f"<!-- real ResNet-18 features: {time.perf_counter() - t0:.1f} s (cached after the first run) -->")
    datasets = []
    for n in sizes:
        if n <= len(real512):
            datasets.append(Dataset("real ResNet-18 (untrained)", True, real512[:n]))
        else:
            datasets.append(Dataset("synthetic, ResNet-18-like", False, synthetic(n, 512, like=real512, seed=n)))
    if with_4096:
        real4096 = demo_features("vgg16", "fc6", args.real)
        for n in sizes:
            if n <= len(real4096):
                datasets.append(Dataset("real VGG16 fc6 (untrained)", True, real4096[:n]))
            elif n <= 10_000 or args.big:
                datasets.append(Dataset("synthetic, VGG16-fc6-like", False, synthetic(n, 4096, like=real4096, seed=n)))

    exact_rows, annoy_rows = [], []
    with tempfile.TemporaryDirectory(prefix="vsearch-bench-index-") as tmp:
        for data in datasets:
            for metric in metrics:
                t1 = time.perf_counter()
                e, a = bench_dataset(
                    data, metric, trees=trees, search_ks=search_ks, sample=sample, budget=budget, workdir=Path(tmp)
                )
                exact_rows.append(e)
                annoy_rows += a
                emit(f"<!-- {data.label} n={data.n} {metric}: {time.perf_counter() - t1:.1f} s -->")

    heading("Data")
    emit(
        table(
            ["vectors", "n", "dim", "share of Hamming bits set (v > 0)"],
            [(d.label, d.n, d.dim, float((d.vectors > 0).mean())) for d in datasets],
        )
    )
    emit(
        "\nResNet-18's penultimate layer follows a ReLU and average pooling: almost every component is "
        "positive, so its Hamming codes are nearly all ones and distances tie massively. Read Hamming on the "
        "VGG fc6 and synthetic rows."
    )

    heading(f"Exact top-{K} of every item (est. = extrapolated from the part done in {budget:g} s)")
    emit(
        table(
            ["vectors", "n", "dim", "metric", "numpy (before)", "torch (matching.index)", "torch speed-up"],
            [
                (lbl, n, dim, m, _t(tn, en), _t(tt, et), f"×{tn / tt:.1f}")
                for lbl, n, dim, m, tn, en, tt, et in exact_rows
            ],
        )
    )

    heading(f"Annoy: build, file size, top-{K} of every item, recall@{K} on {sample} sampled queries")
    emit(
        table(
            [
                "vectors",
                "n",
                "dim",
                "metric",
                "n_trees",
                "build",
                "file",
                "search_k",
                f"all top-{K}",
                f"recall@{K}",
                "annoy / exact",
                "(build + annoy) / exact",
            ],
            [
                (
                    r["data"],
                    r["n"],
                    r["dim"],
                    r["metric"],
                    r["n_trees"],
                    fmt_seconds(r["build"]),
                    fmt_bytes(r["size"]),
                    r["search_k"],
                    _t(r["query"], r["est"]),
                    r["recall"],
                    f"{r['query'] / r['exact']:.2f}",
                    f"{(r['build'] + r['query']) / r['exact']:.2f}",
                )
                for r in annoy_rows
            ],
        )
    )
    heading(f"Exact or Annoy: the default budget's recall, and the faster way to every item's top-{K} per size")
    emit("\n".join(_advice(annoy_rows, metrics)))


def _t(seconds: float, estimated: bool) -> str:
    return fmt_seconds(seconds) + (" est." if estimated else "")


def _advice(rows: list[dict], metrics: list[str]) -> list[str]:
    """Per metric and catalog: exact search against the cheapest Annoy setting that reaches the target
    recall there, and what the pipeline does at that size (matching.index.exact_limit)."""
    from matching import index
    from matching.models import Variant

    default_trees = Variant._meta.get_field("n_trees").default
    out = []
    table_rows = []
    for metric in metrics:
        real = [r for r in rows if r["metric"] == metric and r["real"]]
        shipped = [r for r in real if r["n_trees"] == default_trees and r["search_k"] == -1]
        if shipped:
            recalls = ", ".join(f"{r['recall']:.3f} ({r['dim']}-d, n={r['n']:,})" for r in shipped)
            out.append(f"- **{metric}**: the default n_trees={default_trees}, search_k=-1 on real features: {recalls}.")
        for dim, n in sorted({(r["dim"], r["n"]) for r in rows if r["metric"] == metric}):
            here = [r for r in rows if r["metric"] == metric and r["dim"] == dim and r["n"] == n]
            ok = [r for r in here if r["recall"] >= TARGET_RECALL]
            exact_s = here[0]["exact"]
            used = "exact" if n <= index.exact_limit(metric) else "annoy"
            if ok:
                b = min(ok, key=lambda r: r["build"] + r["query"])
                annoy_s = b["build"] + b["query"]
                table_rows.append(
                    (
                        metric,
                        dim,
                        n,
                        fmt_seconds(exact_s),
                        f"n_trees={b['n_trees']}, search_k={b['search_k']} ({b['recall']:.3f})",
                        fmt_seconds(annoy_s),
                        "exact" if exact_s <= annoy_s else "annoy",
                        f"×{max(exact_s, annoy_s) / min(exact_s, annoy_s):.1f}",
                        used,
                    )
                )
            else:
                table_rows.append(
                    (metric, dim, n, fmt_seconds(exact_s), f"none reaches {TARGET_RECALL}", "—", "exact", "—", used)
                )
    out.append("")
    out.append(
        table(
            [
                "metric",
                "dim",
                "n",
                "exact, every item's top-10",
                f"cheapest Annoy with recall ≥ {TARGET_RECALL}",
                "its build + queries",
                "faster",
                "by",
                "vsearch uses",
            ],
            table_rows,
        )
    )
    return out


if __name__ == "__main__":
    main()
