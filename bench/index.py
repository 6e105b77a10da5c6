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


class TorchExact:
    """Brute force with torch.mm (cdist for L1), the same distances as matching.index.exact_distances."""

    def __init__(self, prepared: np.ndarray, metric: str):
        self.metric = metric
        self.v = torch.from_numpy(np.ascontiguousarray(prepared, dtype=np.float32))
        if metric == "l2":
            self.vsq = (self.v * self.v).sum(1)
        elif metric == "cosine":
            self.vn = self.v / self.v.norm(dim=1, keepdim=True).clamp_min(1e-12)
        elif metric == "hamming":
            self.vt = self.v.T.contiguous()
            self.not_vt = (1.0 - self.v).T.contiguous()

    def distances(self, positions: np.ndarray) -> torch.Tensor:
        q = self.v[torch.from_numpy(positions)]
        if self.metric == "l2":
            return (self.vsq[positions][:, None] + self.vsq[None, :] - 2.0 * (q @ self.v.T)).clamp_min(0).sqrt()
        if self.metric == "cosine":
            return (2.0 - 2.0 * (self.vn[torch.from_numpy(positions)] @ self.vn.T)).clamp_min(0).sqrt()
        if self.metric == "hamming":
            return q @ self.not_vt + (1.0 - q) @ self.vt
        return torch.cdist(q, self.v, p=1)

    def neighbours(self, positions: np.ndarray, k: int) -> np.ndarray:
        out = []
        for start in range(0, len(positions), 256):
            chunk = positions[start : start + 256]
            d = self.distances(chunk)
            d[torch.arange(len(chunk)), torch.from_numpy(chunk)] = float("inf")
            out.append(torch.topk(d, k, largest=False).indices.numpy())
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

    exact = TorchExact(prepared, metric)
    t_torch, est_torch = timed_all_items(lambda p: exact.neighbours(p, K), n, budget=budget, chunk=256)
    t_numpy, est_numpy = timed_all_items(
        lambda p: index.exact_neighbours(prepared, metric, p, K), n, budget=budget, chunk=8 if metric == "l1" else 256
    )
    # Truth for recall on the sampled queries: k-th exact distance and a distance row to look found items up in.
    rows = exact.distances(queries)
    rows[torch.arange(len(queries)), torch.from_numpy(queries)] = float("inf")
    rows = rows.numpy()
    kth = np.partition(rows, K - 1, axis=1)[:, K - 1]
    exact_row = (data.label, n, data.dim, metric, t_numpy, est_numpy, t_torch, est_torch)

    annoy_rows = []
    for n_trees in trees:
        path = workdir / f"{metric}-{n}-{data.dim}-{n_trees}.ann"
        t0 = time.perf_counter()
        index.build(prepared, metric, n_trees=n_trees, seed=0, path=path)
        build_s = time.perf_counter() - t0
        size = path.stat().st_size
        # Not index.load: its per-process cache would keep every unlinked file mapped.
        ann = AnnoyIndex(data.dim, index.ANNOY_METRIC[metric])
        ann.load(str(path))
        for search_k in search_ks:
            found = np.full((len(queries), K), np.inf)
            for r, p in enumerate(queries):
                ids, _ = index.annoy_neighbours(ann, int(p), K + 1, search_k)
                ids = [i for i in ids if i != p][:K]
                found[r, : len(ids)] = rows[r, ids]
            recall = recall_with_ties(found, kth, K)

            def query(positions, ann=ann, search_k=search_k):
                for p in positions:
                    index.annoy_neighbours(ann, int(p), K + 1, search_k)

            t_ann, est_ann = timed_all_items(query, n, budget=budget, chunk=500)
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
                    "exact": min(t_torch, t_numpy),
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
            ["vectors", "n", "dim", "metric", "numpy (matching.index)", "torch (mm / cdist)", "torch speed-up"],
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
    heading("Recommendation")
    emit("\n".join(_advice(annoy_rows, metrics)))


def _t(seconds: float, estimated: bool) -> str:
    return fmt_seconds(seconds) + (" est." if estimated else "")


def _advice(rows: list[dict], metrics: list[str]) -> list[str]:
    lines = []
    for metric in metrics:
        real = [r for r in rows if r["metric"] == metric and r["real"] and r["dim"] == 512]
        real = real or [r for r in rows if r["metric"] == metric and r["real"]]
        if not real:
            continue
        n_real = max(r["n"] for r in real)
        real = [r for r in real if r["n"] == n_real]
        ok = [r for r in real if r["recall"] >= TARGET_RECALL]
        default = next((r for r in real if r["n_trees"] == 20 and r["search_k"] == -1), None)
        now = f" (current default n_trees=20, search_k=-1: recall {default['recall']:.3f})" if default else ""
        if not ok:
            lines.append(
                f"- **{metric}**: no setting tried reaches recall@{K} ≥ {TARGET_RECALL} on real features{now}."
            )
            continue
        best = min(ok, key=lambda r: r["build"] + r["query"])
        choice = (best["n_trees"], best["search_k"])
        line = (
            f"- **{metric}**: n_trees={choice[0]}, search_k={choice[1]} is the cheapest setting with recall@{K} "
            f"≥ {TARGET_RECALL} on real features ({best['recall']:.3f} at n={n_real}){now}. "
        )
        same = sorted(
            (
                r
                for r in rows
                if r["metric"] == metric and r["dim"] == best["dim"] and (r["n_trees"], r["search_k"]) == choice
            ),
            key=lambda r: r["n"],
        )
        faster_exact = [r["n"] for r in same if r["exact"] <= r["build"] + r["query"]]
        slower_exact = [r["n"] for r in same if r["exact"] > r["build"] + r["query"]]
        if slower_exact and faster_exact:
            line += (
                f"Exact search (build + queries counted for Annoy) is faster up to n={max(faster_exact):,} and "
                f"slower from n={min(slower_exact):,}."
            )
        elif faster_exact:
            top = same[-1]
            # Exact grows as n², Annoy's build + queries about as n: the ratio falls linearly with n.
            guess = top["n"] * (top["build"] + top["query"]) / top["exact"]
            line += (
                f"Exact search is faster at every size tried (to n={top['n']:,}); "
                f"crossover ≈ n={guess:,.0f} (extrapolated)."
            )
        elif slower_exact:
            line += f"Annoy is faster at every size tried, from n={min(slower_exact):,}."
        recall_big = [f"{r['n']:,}: {r['recall']:.3f}" for r in same if not r["real"]]
        if recall_big:
            line += f" Recall with this setting on synthetic data: {', '.join(recall_big)}."
        synthetic_rows = [r for r in rows if r["metric"] == metric and not r["real"] and r["dim"] == best["dim"]]
        if synthetic_rows:
            n_big = max(r["n"] for r in synthetic_rows)
            big_ok = [r for r in synthetic_rows if r["n"] == n_big and r["recall"] >= TARGET_RECALL]
            if big_ok:
                b = min(big_ok, key=lambda r: r["build"] + r["query"])
                line += (
                    f" At n={n_big:,} (synthetic) the cheapest setting with recall ≥ {TARGET_RECALL} is "
                    f"n_trees={b['n_trees']}, search_k={b['search_k']} ({b['recall']:.3f})."
                )
            else:
                line += f" At n={n_big:,} (synthetic) no setting tried reaches {TARGET_RECALL}."
        lines.append(line)
    return lines


if __name__ == "__main__":
    main()
