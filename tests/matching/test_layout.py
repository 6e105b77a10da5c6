"""The map of a feature space: the 2-D layout (PCA, then openTSNE) against known answers, the build step that makes
it (claimed, idempotent, atomic), the thumbnails it publishes, and the staff map API that serves it."""

from __future__ import annotations

import os
from datetime import timedelta

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient
from sklearn.manifold import trustworthiness

from matching import claims, pipeline
from matching.layout import layout_2d
from matching.models import FeatureSet, Item, Layout, Variant
from matching.services import variant_create
from matching.storage import media_path, private_path
from matching.thumbnails import SIZE, thumbnail_name


def clusters(n_per: int, centres: int, dim: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian clusters: (vectors, labels)."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centres, dim)) * 10
    labels = np.repeat(np.arange(centres), n_per)
    return (means[labels] + rng.standard_normal((len(labels), dim))).astype(np.float32), labels


# ---------------------------------------------------------------------------------------- numerics


def test_well_separated_clusters_stay_apart_and_neighbourhoods_are_kept():
    vectors, labels = clusters(60, 4, 100)

    xy = layout_2d(vectors, seed=0)

    assert xy.shape == (240, 2) and xy.dtype == np.float32
    # Every point's nearest other point on the map is in its own cluster (1-NN accuracy 1.0).
    d = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=2)
    np.fill_diagonal(d, np.inf)
    assert (labels[d.argmin(1)] == labels).all()
    # scikit-learn's trustworthiness of the map against the (unit-scaled) input: t-SNE keeps local structure.
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert trustworthiness(unit, xy, n_neighbors=10) > 0.95


def test_the_layout_fills_the_unit_square_keeping_its_aspect():
    vectors, _ = clusters(40, 3, 20)

    xy = layout_2d(vectors, seed=0)

    assert xy.min() >= 0.0 and xy.max() <= 1.0 + 1e-6
    spans = xy.max(0) - xy.min(0)
    assert np.isclose(spans.max(), 1.0, atol=1e-5)  # the longer axis spans [0, 1] ...
    assert np.isclose(
        xy[:, spans.argmin()].min() + xy[:, spans.argmin()].max(), 1.0, atol=1e-5
    )  # ... the other is centred


def test_the_same_rows_and_seed_give_the_same_map():
    vectors, _ = clusters(30, 3, 16)

    assert np.array_equal(layout_2d(vectors, seed=3), layout_2d(vectors, seed=3))


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_tiny_catalogs_get_a_map_from_their_principal_axes(n):
    vectors = np.arange(n * 6, dtype=np.float32).reshape(n, 6) ** 2 + 1

    xy = layout_2d(vectors)

    assert xy.shape == (n, 2) and np.isfinite(xy).all() and xy.min() >= 0 and xy.max() <= 1 + 1e-6


def test_a_lone_point_and_identical_points_sit_in_the_middle():
    assert np.allclose(layout_2d(np.ones((1, 8))), 0.5)
    assert np.allclose(layout_2d(np.ones((7, 8))), 0.5)


def test_nan_or_inf_features_are_refused():
    vectors = np.ones((10, 4), dtype=np.float32)
    vectors[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        layout_2d(vectors)


def test_the_heartbeat_is_called_while_t_sne_runs():
    vectors, _ = clusters(20, 2, 8)
    beats = []

    layout_2d(vectors, heartbeat=beats.append)

    assert len(beats) >= 10 and beats == sorted(beats) and beats[-1] == 1.0


# ---------------------------------------------------------------------------------------- the build step


@pytest.fixture
def histogram(demo_catalog) -> Variant:
    variant = variant_create(featurizer="colour-histogram", layer="hsv", metric="l2")
    assert variant.status == Variant.Status.READY, variant.error
    return variant


def test_a_build_lays_out_its_features_beside_them_and_publishes_thumbnails(histogram, demo_catalog):
    layout = Layout.objects.get(feature_set=histogram.feature_set)

    assert layout.status == Layout.Status.READY and layout.n_items == len(demo_catalog) and layout.seconds > 0
    assert layout.path == pipeline.layout_relative_path(histogram.feature_set)
    assert layout.path.startswith("features/") and private_path(layout.path).exists()  # private, beside the features
    with np.load(private_path(layout.path)) as data:
        assert data["ids"].tolist() == [item.pk for item in demo_catalog]
        assert data["xy"].shape == (len(demo_catalog), 2)
    for item in demo_catalog:
        thumb = media_path(thumbnail_name(item.sha256, item.crop_key))
        assert thumb.exists() and thumb.read_bytes()[8:12] == b"WEBP"


def test_thumbnails_are_small_catalog_images_anyone_may_load(histogram, demo_catalog, client):
    from PIL import Image

    item = demo_catalog[0]
    response = client.get(f"/media/{thumbnail_name(item.sha256, item.crop_key)}")

    assert response.status_code == 200
    with Image.open(media_path(thumbnail_name(item.sha256, item.crop_key))) as thumb:
        assert max(thumb.size) <= SIZE and thumb.format == "WEBP"


def test_a_thumbnail_shows_the_items_crop(db, isolated_media):
    from PIL import Image

    from matching.thumbnails import thumbnails_ensure

    image = Image.new("RGB", (200, 100), (255, 0, 0))
    image.paste((0, 0, 255), (100, 0, 200, 100))  # left half red, right half blue
    media_path("items/x.png").parent.mkdir(parents=True, exist_ok=True)
    image.save(media_path("items/x.png"))

    assert thumbnails_ensure([("items/x.png", "ab" * 32, "100,0,200,100", [100, 0, 200, 100])]) == (1, 0)
    with Image.open(media_path(thumbnail_name("ab" * 32, "100,0,200,100"))) as thumb:
        r, g, b = thumb.convert("RGB").getpixel((thumb.width // 2, thumb.height // 2))
    assert b > 200 and r < 60  # the blue crop, not the whole image
    assert thumbnails_ensure([("items/x.png", "ab" * 32, "100,0,200,100", [100, 0, 200, 100])]) == (0, 0)  # once


def test_an_unreadable_image_costs_its_thumbnail_only(db, isolated_media):
    from matching.thumbnails import thumbnails_ensure

    assert thumbnails_ensure([("items/gone.png", "cd" * 32, "", None)]) == (0, 1)
    assert not media_path(thumbnail_name("cd" * 32, "")).exists()


def test_a_current_map_is_not_laid_out_again(histogram):
    layout = Layout.objects.get(feature_set=histogram.feature_set)
    stamp = private_path(layout.path).stat().st_mtime_ns

    again = pipeline.feature_set_layout(feature_set_id=histogram.feature_set_id)

    assert again.ready_at == layout.ready_at and private_path(layout.path).stat().st_mtime_ns == stamp


def test_every_metric_on_one_feature_set_shares_one_map(histogram):
    cosine = variant_create(featurizer="colour-histogram", layer="hsv", metric="cosine")

    assert cosine.feature_set_id == histogram.feature_set_id
    assert Layout.objects.filter(feature_set=histogram.feature_set).count() == 1


def test_a_map_older_than_its_features_is_laid_out_again(histogram):
    layout = Layout.objects.get(feature_set=histogram.feature_set)
    old = private_path(layout.path).stat().st_mtime
    os.utime(private_path(layout.path), (old - 100, old - 100))
    assert not pipeline.layout_current(layout)

    again = pipeline.feature_set_layout(feature_set_id=histogram.feature_set_id)

    assert again.status == Layout.Status.READY and again.ready_at > layout.ready_at
    assert pipeline.layout_current(again)


def test_a_live_owner_keeps_its_claim_and_a_dead_ones_is_taken_over(histogram):
    fs = histogram.feature_set
    Layout.objects.filter(feature_set=fs).update(
        status=Layout.Status.RUNNING, claimed_by=f"{claims.HOST}:{os.getpid()}:other", heartbeat_at=timezone.now()
    )
    os.utime(private_path(pipeline.layout_relative_path(fs)), (1, 1))  # stale, so there is work to do

    assert pipeline._layout_claim(fs.pk) is None  # this very process is alive: a redelivered copy does nothing

    Layout.objects.filter(feature_set=fs).update(heartbeat_at=timezone.now() - timedelta(days=1))
    done = pipeline.feature_set_layout(feature_set_id=fs.pk)
    assert done.status == Layout.Status.READY and done.claimed_by == ""


def test_of_two_processes_racing_for_a_map_only_one_claims_it(histogram, monkeypatch):
    fs = histogram.feature_set
    os.utime(private_path(pipeline.layout_relative_path(fs)), (1, 1))  # stale: there is work to do
    real = pipeline.layout_current
    rival = {}

    def rival_claims_between_our_read_and_write(layout):
        answer = real(layout)
        monkeypatch.setattr(pipeline, "layout_current", real)
        rival["claim"] = pipeline._layout_claim(fs.pk)  # the other process's UPDATE lands now
        return answer

    monkeypatch.setattr(pipeline, "layout_current", rival_claims_between_our_read_and_write)

    assert pipeline._layout_claim(fs.pk) is None  # our conditional UPDATE found the row changed
    assert rival["claim"] is not None
    assert Layout.objects.get(feature_set=fs).claimed_by == rival["claim"][1]


def test_a_failed_layout_says_why_and_keeps_the_earlier_map(histogram, monkeypatch):
    fs = histogram.feature_set
    path = private_path(pipeline.layout_relative_path(fs))
    before = path.read_bytes()
    os.utime(path, (1, 1))

    def broken(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(pipeline, "layout_2d", broken)
    layout = pipeline.feature_set_layout(feature_set_id=fs.pk)

    assert layout.status == Layout.Status.FAILED and "MemoryError: out of memory" in layout.error
    assert layout.claimed_by == "" and path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    assert Variant.objects.get(pk=histogram.pk).status == Variant.Status.READY  # the model is not touched


def test_features_that_are_not_ready_fail_the_map_with_a_message(demo_catalog):
    fs = FeatureSet.objects.create(featurizer="colour-histogram", layer="hsv", weights="none")

    layout = pipeline.feature_set_layout(feature_set_id=fs.pk)

    assert layout.status == Layout.Status.FAILED and "not ready" in layout.error


def test_the_random_control_has_no_map(demo_catalog):
    variant_create(metric="random")

    assert not Layout.objects.exists()


def test_build_maps_lays_out_the_feature_sets_an_older_install_left_without_one(histogram):
    from django.core.management import call_command

    Layout.objects.all().delete()

    call_command("build_maps", verbosity=0)

    assert Layout.objects.get(feature_set=histogram.feature_set).status == Layout.Status.READY


# ---------------------------------------------------------------------------------------- the staff map API


@pytest.fixture
def staff_client(db) -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.create_user("mara", is_staff=True))
    return client


def test_the_map_api_serves_the_built_file_as_columns(histogram, demo_catalog, staff_client):
    layout = Layout.objects.get(feature_set=histogram.feature_set)
    with np.load(private_path(layout.path)) as data:
        xy = data["xy"]

    body = staff_client.get(f"/api/maps/{histogram.feature_set_id}").json()

    points = body["points"]
    assert body["status"] == "ready" and body["current"] is True
    assert points["item"] == [item.pk for item in demo_catalog]
    assert np.allclose(points["x"], xy[:, 0], atol=1e-5) and np.allclose(points["y"], xy[:, 1], atol=1e-5)
    assert [body["categories"][c] for c in points["category"]] == [item.category for item in demo_catalog]
    assert points["thumbnail"][0] == "/media/" + thumbnail_name(demo_catalog[0].sha256, demo_catalog[0].crop_key)


def test_the_map_is_read_from_its_file_not_recomputed(histogram, staff_client, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("a page view must not lay anything out")

    monkeypatch.setattr(pipeline, "layout_2d", never)

    assert staff_client.get(f"/api/maps/{histogram.feature_set_id}").status_code == 200


def test_items_deleted_since_the_layout_leave_the_map(histogram, demo_catalog, staff_client):
    Item.objects.filter(pk=demo_catalog[0].pk).delete()

    body = staff_client.get(f"/api/maps/{histogram.feature_set_id}").json()

    assert demo_catalog[0].pk not in body["points"]["item"] and len(body["points"]["x"]) == len(demo_catalog) - 1


def test_the_map_list_names_each_feature_set_its_maps_state_and_models(histogram, staff_client):
    maps = staff_client.get("/api/maps").json()["maps"]

    assert [(m["feature_set"], m["status"], m["current"]) for m in maps] == [(histogram.feature_set_id, "ready", True)]
    assert [v["id"] for v in maps[0]["variants"]] == [histogram.pk]


def test_staff_can_ask_for_a_missing_map(histogram, staff_client):
    Layout.objects.all().delete()
    assert staff_client.get(f"/api/maps/{histogram.feature_set_id}").json()["status"] == "none"

    response = staff_client.post(f"/api/maps/{histogram.feature_set_id}/build")

    assert response.status_code == 202 and response.json()["status"] == "ready"  # eager in tests


def test_maps_are_staff_only(histogram, client):
    from tests.voting.conftest import browser

    voter = browser()
    for url in ("/api/maps", f"/api/maps/{histogram.feature_set_id}"):
        assert client.get(url).status_code in (401, 403)
        assert voter.get(url).status_code in (401, 403)
    assert client.post(f"/api/maps/{histogram.feature_set_id}/build").status_code in (401, 403)


def test_a_feature_set_that_is_not_ready_has_no_map_to_show(demo_catalog, staff_client):
    fs = FeatureSet.objects.create(featurizer="colour-histogram", layer="hsv", weights="none")

    assert staff_client.get(f"/api/maps/{fs.pk}").status_code == 404
    assert staff_client.get("/api/maps/999999").json()["detail"]
