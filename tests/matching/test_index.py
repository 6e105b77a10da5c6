"""Annoy indexes against brute force, per metric; and the offline metrics on hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest

from matching import index
from matching.evaluation import precision_at, recall_with_ties

METRICS = ["l1", "l2", "hamming", "cosine"]
K = 10

# Recall@10 (counting ties, as the pipeline does) of 20 trees at Annoy's default search_k on 300 Gaussian
# 32-d vectors, measured over data seeds 0-2: l1 0.87-0.89, l2 0.89-0.90, hamming 0.99-1.00, cosine 0.95.
# The bounds keep about 0.05 of headroom; a broken index would score near k/n = 0.03.
RECALL_BOUND = {"l1": 0.82, "l2": 0.84, "hamming": 0.95, "cosine": 0.90}


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((300, 32)).astype(np.float32)


@pytest.fixture
def built(tmp_path, vectors):
    """metric -> (prepared vectors, Annoy searcher loaded from its file), 20 trees unless told."""

    def build(metric: str, n_trees: int = 20):
        path = tmp_path / f"{metric}-{n_trees}.ann"
        index.AnnoySearch(metric, n_trees=n_trees, seed=0).fit(vectors).save(path)
        return index.prepare(vectors, metric), index.AnnoySearch.load(path)

    return build


@pytest.mark.parametrize("metric", METRICS)
def test_annoy_neighbours_agree_with_brute_force(built, vectors, metric):
    prepared, annoy = built(metric)
    positions = np.arange(len(prepared))
    exact, _ = index.ExactSearch(metric).fit(vectors).neighbours(positions, K)
    distances = index.exact_distances(prepared, prepared, metric)

    top, _ = annoy.neighbours(positions, K)
    found = np.array([[distances[q, n] for n in top[q]] for q in positions])
    kth = distances[positions, exact[:, -1]]
    recall = recall_with_ties(found, kth, K)

    assert recall >= RECALL_BOUND[metric]


@pytest.mark.parametrize("metric", METRICS)
def test_a_search_budget_covering_the_whole_index_finds_exactly_the_brute_force_neighbours(built, vectors, metric):
    prepared, annoy = built(metric, n_trees=10)
    exact, _ = index.ExactSearch(metric).fit(vectors).neighbours(np.arange(50), K)
    distances = index.exact_distances(prepared, prepared, metric)

    _, dists = annoy.set_query_arguments(10 * len(prepared)).neighbours(np.arange(50), K)
    for q in range(50):
        # Compared by distance: Hamming ties make the identities of the k-th neighbours arbitrary.
        np.testing.assert_allclose(dists[q], distances[q, exact[q]], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("metric", METRICS)
def test_exact_distances_are_the_distances_annoy_reports(built, metric):
    prepared, annoy = built(metric)

    for q in range(0, 300, 30):
        nns, dists = annoy.neighbours(np.array([q]), K)
        expected = index.exact_distances(prepared[[q]], prepared[nns[0]], metric)[0]
        np.testing.assert_allclose(dists[0], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("searcher", ["exact", "annoy"])
@pytest.mark.parametrize("metric", METRICS)
def test_a_query_by_vector_finds_the_textbook_nearest_rows(vectors, metric, searcher):
    fitted = (
        index.ExactSearch(metric) if searcher == "exact" else index.AnnoySearch(metric, n_trees=10, search_k=10**6)
    ).fit(vectors)
    queries = np.random.default_rng(5).standard_normal((6, 32)).astype(np.float32)  # not rows of the catalog

    top, dists = fitted.batch_query(queries, K)
    one, one_dists = fitted.query(queries[0], K)

    truth = index.exact_distances(index.prepare(queries, metric), index.prepare(vectors, metric), metric)
    for row in range(len(queries)):
        np.testing.assert_allclose(np.sort(dists[row]), np.sort(truth[row])[:K], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(truth[row, top[row]], dists[row], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(one, top[0])
    np.testing.assert_allclose(one_dists, dists[0], rtol=1e-5)


def test_exact_neighbours_are_sorted_and_never_the_query_itself(vectors):
    exact, _ = index.ExactSearch("l2").fit(vectors).neighbours(np.arange(300), K)
    distances = index.exact_distances(vectors, vectors, "l2")

    assert not (exact == np.arange(300)[:, None]).any()
    rows = np.take_along_axis(distances, exact, axis=1)
    assert (np.diff(rows, axis=1) >= 0).all()
    assert (rows[:, -1] <= np.sort(distances, axis=1)[:, K]).all()  # column 0 of the sort is the query


def test_exact_neighbours_skip_an_excluded_group_and_pad_with_minus_one_when_too_few_remain():
    vectors = np.array([[0.0], [0.1], [0.2], [5.0]], dtype=np.float32)
    groups = np.array([0, 0, 0, 1])  # the first three are copies of one image

    exact, _ = index.ExactSearch("l1").fit(vectors, groups=groups).neighbours(np.array([0, 3]), 3)

    assert exact.tolist() == [[3, -1, -1], [2, 1, 0]]


def test_hamming_binarizes_by_sign_not_at_one_half():
    raw = np.array([[0.3, -0.2, 0.0, 2.0, 0.6]], dtype=np.float32)

    assert index.prepare(raw, "hamming").tolist() == [[1.0, 0.0, 0.0, 1.0, 1.0]]


def test_hamming_index_counts_small_positive_values_as_set_bits(tmp_path):
    # Annoy alone would pack 0.3 as a 0 bit and call these two vectors identical.
    raw = np.array([[0.3, 0.3, 0.3, 0.3], [-1.0, -1.0, -1.0, -1.0], [1.0, 1.0, 1.0, 1.0]], dtype=np.float32)
    index.AnnoySearch("hamming", n_trees=2, seed=0).fit(raw).save(tmp_path / "h.ann")
    ann = index.AnnoySearch.load(tmp_path / "h.ann").annoy

    assert ann.get_distance(0, 1) == 4
    assert ann.get_distance(0, 2) == 0


def test_other_metrics_leave_vectors_unchanged(vectors):
    for metric in ["l1", "l2", "cosine"]:
        np.testing.assert_array_equal(index.prepare(vectors, metric), vectors)


def test_a_rebuilt_index_at_the_same_path_is_the_one_loaded_next(tmp_path):
    path = tmp_path / "x.ann"
    index.AnnoySearch("l2", n_trees=2, seed=0).fit(np.eye(4, dtype=np.float32)).save(path)
    assert index.AnnoySearch.load(path).annoy.get_n_items() == 4

    index.AnnoySearch("l2", n_trees=2, seed=0).fit(np.eye(6, dtype=np.float32)).save(path)

    assert index.AnnoySearch.load(path).annoy.get_n_items() == 6
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_an_unknown_metric_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown metric 'jaccard'"):
        index.exact_distances(np.ones((1, 2)), np.ones((1, 2)), "jaccard")


# ---------------------------------------------------------------------------------------- evaluation


def test_precision_at_counts_first_match_and_all_valid_matches():
    queries = np.array([0, 1, 2])
    matches = np.array([[0, 0, 1], [2, 1, -1], [2, 0, 0]])

    p1, pk = precision_at(queries, matches)

    assert p1 == pytest.approx(2 / 3)  # queries 0 and 2 hit at rank 0
    assert pk == pytest.approx(4 / 8)  # 2 + 1 + 1 hits among the 8 real matches


def test_precision_at_of_no_queries_is_zero():
    assert precision_at(np.array([], dtype=int), np.zeros((0, 5), dtype=int)) == (0.0, 0.0)


def test_recall_with_ties_counts_matches_as_close_as_the_exact_kth_neighbour():
    found = np.array([[1.0, 2.0, 2.0], [1.0, 3.0, np.inf]])
    kth = np.array([2.0, 2.0])

    # Row 0: a tie at the k-th distance counts, whoever the item is. Row 1: 3.0 is too far, inf is missing.
    assert recall_with_ties(found, kth, 3) == pytest.approx(4 / 6)


def test_recall_with_ties_forgives_float_noise_but_not_a_worse_neighbour():
    kth = np.array([1.0])

    assert recall_with_ties(np.array([[1.0 + 1e-6]]), kth, 1) == 1.0
    assert recall_with_ties(np.array([[1.01]]), kth, 1) == 0.0


@pytest.mark.parametrize("metric", ["l1", "l2", "hamming", "cosine"])
def test_exact_distances_match_their_textbook_definitions(metric):
    rng = np.random.default_rng(3)
    q, v = (index.prepare(rng.standard_normal((n, 16)), metric).astype(np.float64) for n in (5, 40))

    got = index.exact_distances(q, v, metric)

    diff = q[:, None, :] - v[None, :, :]
    if metric == "l1":
        want = np.abs(diff).sum(-1)
    elif metric == "l2":
        want = np.sqrt((diff**2).sum(-1))
    elif metric == "hamming":
        want = (q[:, None, :] != v[None, :, :]).sum(-1)
    else:
        cos = (q @ v.T) / np.outer(np.linalg.norm(q, axis=1), np.linalg.norm(v, axis=1))
        want = np.sqrt(2 - 2 * cos)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
