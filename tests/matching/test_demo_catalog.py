"""The synthetic demo catalog: deterministic, balanced, and separable by shape but not by colour."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from matching.demo_catalog import CATEGORIES, COLOURS, PATTERNS, DemoItem, generate

# 30 items per category: enough for a stable half/half split, still about a second to render.
SPLIT_ITEMS = 30 * len(CATEGORIES)


def pixels(item: DemoItem) -> bytes:
    return item.image.tobytes()


@pytest.fixture(scope="module")
def split_catalog() -> tuple[list[DemoItem], np.ndarray]:
    items = list(generate(SPLIT_ITEMS, seed=11))
    labels = np.array([CATEGORIES.index(item.category) for item in items])
    return items, labels


def nearest_centroid_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    """Fit class means on the first half, score the second half."""
    half = len(labels) // 2
    centroids = np.stack([features[:half][labels[:half] == c].mean(axis=0) for c in range(len(CATEGORIES))])
    distances = ((features[half:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    return float((distances.argmin(axis=1) == labels[half:]).mean())


def edge_histogram(image: Image.Image) -> np.ndarray:
    """A small HOG: gradient orientations pooled over a 4x4 grid; blurring first mutes the fabric patterns."""
    grey = np.asarray(image.convert("L").resize((64, 64)).filter(ImageFilter.GaussianBlur(2)), np.float32)
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    orientation = np.minimum((np.arctan2(gy, gx) % np.pi) / np.pi * 8, 7).astype(int)
    cells = [
        np.bincount(orientation[i : i + 16, j : j + 16].ravel(), magnitude[i : i + 16, j : j + 16].ravel(), 8)
        for i in range(0, 64, 16)
        for j in range(0, 64, 16)
    ]
    feature = np.concatenate(cells)
    return feature / (np.linalg.norm(feature) + 1e-6)


def test_same_seed_renders_identical_images():
    first = [(i.category, i.colour, i.pattern, pixels(i)) for i in generate(12, seed=3)]
    second = [(i.category, i.colour, i.pattern, pixels(i)) for i in generate(12, seed=3)]
    assert first == second


def test_different_seeds_render_different_images():
    a = [pixels(i) for i in generate(12, seed=3)]
    b = [pixels(i) for i in generate(12, seed=4)]
    assert all(x != y for x, y in zip(a, b, strict=True))


def test_a_shorter_run_is_a_prefix_of_a_longer_one():
    short = [pixels(i) for i in generate(10, seed=5)]
    long = [pixels(i) for i in generate(20, seed=5)]
    assert short == long[:10]


def test_items_within_a_run_all_differ():
    images = [pixels(i) for i in generate(2 * len(CATEGORIES), seed=6)]
    assert len(set(images)) == len(images)


def test_every_category_appears_in_two_rounds():
    items = list(generate(2 * len(CATEGORIES), seed=7))
    counts = {c: sum(i.category == c for i in items) for c in CATEGORIES}
    assert counts == dict.fromkeys(CATEGORIES, 2)


def test_exactly_the_ten_catalog_categories_are_offered():
    required = {"t-shirt", "dress", "trousers", "skirt", "hoodie", "coat", "shoe", "bag", "hat", "scarf"}
    assert set(CATEGORIES) == required
    assert len(CATEGORIES) == len(required)


@pytest.mark.parametrize("size", [64, 128, 200])
def test_images_are_rgb_of_the_requested_size_and_survive_png(size):
    for item in generate(len(CATEGORIES), seed=8, size=size):
        assert item.image.mode == "RGB"
        assert item.image.size == (size, size)
        buffer = io.BytesIO()
        item.image.save(buffer, format="PNG")
        decoded = Image.open(io.BytesIO(buffer.getvalue()))
        assert decoded.mode == "RGB"
        assert decoded.tobytes() == item.image.tobytes()


def test_attributes_come_from_the_published_colours_and_patterns():
    items = list(generate(60, seed=9))
    for item in items:
        assert item.attributes == {"colour": item.colour, "pattern": item.pattern}
        assert item.colour in COLOURS
        assert item.pattern in PATTERNS
    # Not stuck on one value: a broken sampler would pass the membership checks above.
    assert len({i.colour for i in items}) >= 8
    assert set(PATTERNS) == {i.pattern for i in items}


def test_items_are_not_blank_and_the_garment_stands_out():
    for item in generate(len(CATEGORIES), seed=10):
        assert np.asarray(item.image, np.float32).std() > 10


def test_mean_colour_does_not_give_away_the_category(split_catalog):
    # Chance is 0.10; over seeds 0-9 this scored 0.09-0.15, so 0.25 only fails on a real leak.
    items, labels = split_catalog
    means = np.stack([np.asarray(i.image, np.float32).reshape(-1, 3).mean(axis=0) for i in items])
    assert nearest_centroid_accuracy(means, labels) < 0.25


def test_category_is_learnable_from_shape(split_catalog):
    # Edge histograms reach 0.39-0.51 over seeds 0-9 against 0.10 chance: the silhouette carries the label.
    items, labels = split_catalog
    features = np.stack([edge_histogram(i.image) for i in items])
    assert nearest_centroid_accuracy(features, labels) > 0.25
