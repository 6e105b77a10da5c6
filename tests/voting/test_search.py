"""Search by photo or by item (POST /api/search): the build's own preprocessing and neighbours, bad photos refused
with nothing stored, the engine loaded once per process, throttling, and the blindness rule on which models the
public may search with."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from matching import search as engine
from matching.features import features_load
from matching.models import Item, MatchPair, Variant
from matching.services import variant_create, variant_set_rotation, variant_set_search_model
from matching.storage import media_path
from tests.conftest import patterned_png, png_bytes
from tests.voting.conftest import add_votes, browser
from voting.search import NO_PUBLIC_MODEL, SHARED_FEATURES, STAFF_ONLY
from voting.throttles import SearchIPRateThrottle, SearchRateThrottle


@pytest.fixture(autouse=True)
def fresh_engines():
    engine.engines_forget()
    yield
    engine.engines_forget()


@pytest.fixture
def models(demo_catalog) -> dict[str, Variant]:
    built = {
        "l2": variant_create(featurizer="colour-histogram", layer="hsv", metric="l2", k=3),
        "cosine": variant_create(featurizer="colour-histogram", layer="hsv", metric="cosine", k=3),
        "random": variant_create(metric="random", k=3),
    }
    assert all(v.status == Variant.Status.READY for v in built.values()), [v.error for v in built.values()]
    return built


def retire_histograms(models) -> None:
    """Both colour-histogram models out of the rotation: the public may search with them (they share features)."""
    for metric in ("l2", "cosine"):
        variant_set_rotation(variant=models[metric], rotation="retired")


def photo(data: bytes, name: str = "photo.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def image_of(item: Item) -> bytes:
    return media_path(item.image).read_bytes()


def search(client: APIClient, **fields):
    if "image" in fields:
        return client.post("/api/search", fields, format="multipart")
    return client.post("/api/search", fields, format="json")


def stored() -> tuple:
    """Everything a search could leave behind: rows, and files in the media root and the private storage."""
    from django.conf import settings

    files = sorted(
        str(p)
        for root in (Path(settings.MEDIA_ROOT), Path(settings.VSEARCH_PRIVATE_ROOT))
        if root.exists()
        for p in root.rglob("*")
        if p.is_file()
    )
    marks = list(Variant.objects.order_by("id").values_list("searched_publicly_at", "rotation"))
    return Item.everything.count(), MatchPair.objects.count(), marks, files


# ---------------------------------------------------------------------------------------- what a search finds


def test_a_catalog_photo_finds_its_own_item_first_at_distance_zero(models, demo_catalog, staff):
    item = demo_catalog[4]

    body = search(staff, image=photo(image_of(item)), model=models["l2"].pk, k=5).json()

    assert body["model"] == {"id": models["l2"].pk, "name": models["l2"].name} and body["query"] is None
    first = body["results"][0]
    assert first["item"] == item.pk and first["distance"] == pytest.approx(0.0, abs=1e-5)
    assert first["image"] == item.image_url and first["category"] == item.category and first["rank"] == 1
    assert len(body["results"]) == 5
    distances = [r["distance"] for r in body["results"]]
    assert distances == sorted(distances)


def test_search_by_item_gives_the_models_stored_pairs(models, demo_catalog, staff):
    variant = models["cosine"]
    item = demo_catalog[7]
    stored_pairs = list(
        MatchPair.objects.filter(variant=variant, query_item=item)
        .order_by("rank")
        .values_list("pair__match_item_id", "distance")
    )

    body = search(staff, item=item.pk, model=variant.pk, k=variant.k).json()

    assert body["query"] == {"item": item.pk, "category": item.category, "image": item.image_url}
    assert [r["item"] for r in body["results"]] == [m for m, _ in stored_pairs]
    assert [r["distance"] for r in body["results"]] == pytest.approx([d for _, d in stored_pairs], abs=1e-5)
    assert item.pk not in [r["item"] for r in body["results"]]  # never the item itself


def test_more_neighbours_than_the_model_stored_come_from_its_searcher_and_begin_with_its_pairs(
    models, demo_catalog, staff
):
    variant = models["l2"]
    item = demo_catalog[9]

    stored = search(staff, item=item.pk, model=variant.pk, k=variant.k).json()["results"]
    more = search(staff, item=item.pk, model=variant.pk, k=variant.k + 5).json()["results"]

    assert len(more) == variant.k + 5 and item.pk not in [r["item"] for r in more]
    assert [r["item"] for r in more[: variant.k]] == [r["item"] for r in stored]
    assert [r["distance"] for r in more[: variant.k]] == pytest.approx([r["distance"] for r in stored], abs=1e-5)


def test_a_model_whose_pairs_came_from_annoy_searches_with_its_annoy_index(demo_catalog, staff, settings):
    settings.VSEARCH_EXACT_MAX_ITEMS = 10  # 30 items: over the limit, so the pairs (and searches) use Annoy
    variant = variant_create(featurizer="colour-histogram", layer="hsv", metric="l2", k=3)
    assert variant.status == Variant.Status.READY and variant.pairs_search == "annoy"
    item = demo_catalog[6]

    by_photo = search(staff, image=photo(image_of(item)), model=variant.pk, k=5).json()["results"]
    by_item = search(staff, item=item.pk, model=variant.pk, k=8).json()["results"]

    assert type(engine.engine_for(variant).searcher).__name__ == "AnnoySearch"
    assert by_photo[0]["item"] == item.pk and by_photo[0]["distance"] == pytest.approx(0.0, abs=1e-5)
    assert len(by_item) == 8 and item.pk not in [r["item"] for r in by_item]


def test_the_distances_are_the_models_own_metric(models, demo_catalog, staff):
    """Textbook distances between the query's feature row and each result's, under L2 and under cosine."""
    ids, vectors = features_load(models["l2"].feature_set)
    row = {int(i): np.asarray(vectors[p], dtype=np.float64) for p, i in enumerate(ids)}
    query = demo_catalog[2].pk

    for metric, distance in (
        ("l2", lambda a, b: np.linalg.norm(a - b)),
        ("cosine", lambda a, b: np.sqrt(2 - 2 * a @ b / np.linalg.norm(a) / np.linalg.norm(b))),
    ):
        body = search(staff, item=query, model=models[metric].pk, k=4).json()
        for result in body["results"]:
            assert result["distance"] == pytest.approx(distance(row[query], row[result["item"]]), abs=1e-4)


@pytest.mark.slow
def test_a_photo_goes_through_the_networks_own_preprocessing_upright(demo_catalog, staff):
    """ResNet-18 (weights=None): a catalog image sent as a photo is at distance ~0 from its own feature row, also
    when it arrives as a phone would send it (rotated pixels plus an EXIF tag saying how to turn them upright)."""
    variant = variant_create(featurizer="resnet18", layer="penultimate", metric="cosine", k=3)
    assert variant.status == Variant.Status.READY, variant.error
    item = demo_catalog[11]

    plain = search(staff, image=photo(image_of(item)), model=variant.pk, k=3).json()["results"][0]

    with Image.open(media_path(item.image)) as original:
        rotated = original.convert("RGB").transpose(Image.Transpose.ROTATE_90)  # as the sensor stored it
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn 90° clockwise to display
    tagged, untagged = io.BytesIO(), io.BytesIO()
    rotated.save(tagged, format="PNG", exif=exif.tobytes())
    rotated.save(untagged, format="PNG")
    upright = search(staff, image=photo(tagged.getvalue()), model=variant.pk, k=3).json()["results"][0]
    sideways = search(staff, image=photo(untagged.getvalue()), model=variant.pk, k=3).json()["results"][0]

    assert plain["item"] == item.pk and plain["distance"] == pytest.approx(0.0, abs=1e-3)
    assert upright["item"] == item.pk and upright["distance"] == pytest.approx(0.0, abs=1e-3)
    assert sideways["distance"] > 0.01  # the network does see the difference: the tag was what turned it


def test_an_item_imported_after_the_build_is_searched_by_its_image(models, demo_catalog, staff):
    from matching.catalog import Entry
    from matching.services import item_add

    twin = demo_catalog[3]
    with Image.open(media_path(twin.image)) as original:
        buffer = io.BytesIO()
        original.convert("RGB").save(buffer, format="PNG", optimize=True)  # other bytes, same pixels
    item_add(entry=Entry(path=Path("new.png"), category=twin.category), data=buffer.getvalue())
    newcomer = Item.objects.latest("id")

    body = search(staff, item=newcomer.pk, model=models["l2"].pk, k=3).json()

    assert body["results"][0]["item"] == twin.pk and newcomer.pk not in [r["item"] for r in body["results"]]


# ---------------------------------------------------------------------------------------- bad input


def truncated_png() -> bytes:
    data = patterned_png(1, size=40)  # random pixels: the cut falls inside the image data
    return data[: len(data) // 2]


def tiff_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20)).save(buffer, format="TIFF")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data, says",
    [
        (b"this is not an image at all", "not an image"),
        (b"", "empty file"),
        ("truncated", "truncated or corrupt"),
        ("tiff", "TIFF images are not accepted"),
        ("too many bytes", "6,077 bytes, over the limit of 5,000"),
        ("too many pixels", "10,100 pixels, over the limit of 10,000"),
    ],
)
def test_a_bad_photo_gets_a_clear_400_and_nothing_is_stored(models, staff, client, settings, data, says):
    settings.VSEARCH_SEARCH_MAX_BYTES = 5000
    settings.VSEARCH_MAX_IMAGE_PIXELS = 10_000
    data = {
        "truncated": truncated_png,
        "tiff": tiff_bytes,
        "too many bytes": lambda: png_bytes(size=(10, 10)) + b"\0" * 6000,
        "too many pixels": lambda: png_bytes(size=(101, 100)),
    }.get(data, lambda: data)()
    retire_histograms(models)  # the public may search with them
    before = stored()

    for user in (staff, client):
        response = search(user, image=photo(data), k=3)
        assert response.status_code == 400, response.content
        assert (
            response.json()["detail"].startswith("The photo cannot be searched") and says in response.json()["detail"]
        )

    assert stored() == before  # not even the public model's mark


def test_a_request_far_over_the_limit_is_refused_before_it_is_read(models, staff, settings, monkeypatch):
    from django.http.multipartparser import MultiPartParser

    settings.VSEARCH_SEARCH_MAX_BYTES = 5000
    parsed = []
    monkeypatch.setattr(MultiPartParser, "parse", lambda self: parsed.append(1))
    before = stored()

    response = search(staff, image=photo(b"\0" * 200_000), model=models["l2"].pk)

    assert response.status_code == 400 and "over the limit of 5,000" in response.json()["detail"]
    assert parsed == [] and stored() == before


@pytest.mark.parametrize(
    "fields, status, says",
    [
        ({}, 400, "either an image or an item"),
        ({"item": 1, "image": "x"}, 400, "not valid"),  # a text field where a file belongs
        ({"item": 999_999}, 404, "no catalog item #999999"),
        ({"item": "seven"}, 400, "not valid"),
        ({"item": 1, "k": 0}, 400, "not valid"),
        ({"item": 1, "k": 51}, 400, "not valid"),
        ({"item": 1, "model": 999_999}, 404, "no model #999999"),
    ],
)
def test_a_malformed_query_is_a_json_error(models, demo_catalog, staff, fields, status, says):
    fields = {k: demo_catalog[0].pk if v == 1 else v for k, v in fields.items()}
    response = staff.post("/api/search", fields, format="json")

    assert response.status_code == status and says in response.json()["detail"]


def test_an_image_and_an_item_together_are_refused(models, demo_catalog, staff):
    response = search(staff, image=photo(image_of(demo_catalog[0])), item=demo_catalog[0].pk)

    assert response.status_code == 400 and response.json()["detail"] == "Send either an image or an item id (not both)."


def test_the_random_control_cannot_search(models, demo_catalog, staff):
    response = search(staff, item=demo_catalog[0].pk, model=models["random"].pk)

    assert response.status_code == 409 and "random control" in response.json()["detail"]


def test_a_model_built_from_uploaded_embeddings_searches_by_item_but_not_by_photo(demo_catalog, staff):
    from matching.services import variants_from_embeddings

    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buffer, item_ids=np.array([i.pk for i in demo_catalog]), embeddings=rng.standard_normal((30, 8)))
    (variant,) = variants_from_embeddings(
        name="clip", metrics=["l2"], upload=SimpleUploadedFile("clip.npz", buffer.getvalue())
    )
    variant.refresh_from_db()
    assert variant.status == Variant.Status.READY, variant.error

    by_item = search(staff, item=demo_catalog[0].pk, model=variant.pk, k=2)
    by_photo = search(staff, image=photo(image_of(demo_catalog[0])), model=variant.pk)

    assert by_item.status_code == 200 and len(by_item.json()["results"]) == 2
    assert by_photo.status_code == 400 and "uploaded embeddings" in by_photo.json()["detail"]


# ---------------------------------------------------------------------------------------- once per process


def test_the_engine_and_the_featurizer_load_once_per_process(models, demo_catalog, staff, monkeypatch):
    from matching import featurizers

    loads = []
    real = engine._load
    monkeypatch.setattr(engine, "_load", lambda variant: loads.append(variant.pk) or real(variant))
    featurizers._build.cache_clear()

    for item in demo_catalog[:4]:
        assert search(staff, image=photo(image_of(item)), model=models["l2"].pk).status_code == 200
        assert search(staff, item=item.pk, model=models["l2"].pk).status_code == 200

    assert loads == [models["l2"].pk]
    assert featurizers._build.cache_info().misses == 1


def test_a_rebuilt_model_is_loaded_again(models, demo_catalog, staff, monkeypatch):
    import os

    from matching.storage import private_path

    loads = []
    real = engine._load
    monkeypatch.setattr(engine, "_load", lambda variant: loads.append(variant.pk) or real(variant))
    search(staff, item=demo_catalog[0].pk, model=models["l2"].pk)
    features = private_path(models["l2"].feature_set.path)
    os.utime(features, (features.stat().st_atime, features.stat().st_mtime + 5))  # new features written

    search(staff, item=demo_catalog[0].pk, model=models["l2"].pk)

    assert loads == [models["l2"].pk, models["l2"].pk]


# ---------------------------------------------------------------------------------------- throttling


def test_public_search_is_throttled_like_voting_and_staff_are_not(models, demo_catalog, staff, monkeypatch):
    monkeypatch.setitem(SearchRateThrottle.THROTTLE_RATES, "search", "3/min")
    monkeypatch.setitem(SearchIPRateThrottle.THROTTLE_RATES, "search_ip", "100/min")
    retire_histograms(models)
    voter = browser()

    answers = [search(voter, item=demo_catalog[0].pk).status_code for _ in range(4)]
    staff_answers = [search(staff, item=demo_catalog[0].pk).status_code for _ in range(6)]

    assert answers == [200, 200, 200, 429] and staff_answers == [200] * 6


def test_a_cleared_cookie_does_not_reset_the_address_limit(models, demo_catalog, monkeypatch):
    monkeypatch.setitem(SearchRateThrottle.THROTTLE_RATES, "search", "100/min")
    monkeypatch.setitem(SearchIPRateThrottle.THROTTLE_RATES, "search_ip", "2/min")
    retire_histograms(models)

    answers = [search(browser(), item=demo_catalog[0].pk).status_code for _ in range(3)]

    assert answers == [200, 200, 429]


# ---------------------------------------------------------------------------------------- blindness


def test_with_no_model_out_of_the_rotation_the_public_cannot_search(models, demo_catalog, client):
    response = search(client, item=demo_catalog[0].pk)
    listed = client.get("/api/search/models").json()

    assert response.status_code == 503 and response.json()["detail"] == NO_PUBLIC_MODEL
    assert listed == {"default": None, "models": [], "detail": NO_PUBLIC_MODEL}


@pytest.mark.parametrize("rotation", ["active", "paused"])
def test_the_public_may_not_name_a_model_voters_are_or_may_again_be_judging(models, demo_catalog, client, rotation):
    variant_set_rotation(variant=models["l2"], rotation=rotation)

    response = search(client, item=demo_catalog[0].pk, model=models["l2"].pk)

    assert response.status_code == 403 and response.json()["detail"] == STAFF_ONLY


def test_a_retired_model_whose_feature_mate_is_still_judged_is_not_for_the_public(models, demo_catalog, client):
    """l2 and cosine on the same colour histograms find nearly the same neighbours: searching with retired l2
    would tell voters which cards active cosine made."""
    variant_set_rotation(variant=models["l2"], rotation="retired")

    listed = client.get("/api/search/models").json()
    named = search(client, item=demo_catalog[0].pk, model=models["l2"].pk)

    assert listed["models"] == [] and listed["default"] is None
    assert named.status_code == 403 and named.json()["detail"] == SHARED_FEATURES
    assert Variant.objects.get(pk=models["l2"].pk).searched_publicly_at is None


def test_staff_may_search_with_a_model_in_the_rotation(models, demo_catalog, staff):
    assert models["l2"].rotation == "active"

    assert search(staff, item=demo_catalog[0].pk, model=models["l2"].pk).status_code == 200


def test_once_the_public_searched_with_a_model_no_model_on_its_features_is_judged_again(models, demo_catalog, client):
    from matching.services import VariantSearchedPublicly

    retire_histograms(models)

    body = search(client, item=demo_catalog[0].pk, model=models["l2"].pk).json()

    assert body["model"] == {"id": models["l2"].pk, "name": models["l2"].name}  # named: no longer judged
    assert Variant.objects.get(pk=models["l2"].pk).searched_publicly_at is not None
    for metric in ("l2", "cosine"):  # itself, and its feature-mate
        for rotation in ("active", "paused"):
            with pytest.raises(VariantSearchedPublicly, match="would recognise the cards"):
                variant_set_rotation(variant=Variant.objects.get(pk=models[metric].pk), rotation=rotation)
    with pytest.raises(VariantSearchedPublicly):  # nor a new model on those features
        variant_create(featurizer="colour-histogram", layer="hsv", metric="hamming")
    assert set(Variant.objects.exclude(metric="random").values_list("rotation", flat=True)) == {"retired"}
    assert variant_set_rotation(variant=models["random"], rotation="paused").rotation == "paused"  # others may


def test_resuming_a_publicly_searched_model_through_the_api_is_a_409(models, demo_catalog, client, staff):
    retire_histograms(models)
    search(client, item=demo_catalog[0].pk)

    response = staff.post(f"/api/variants/{models['l2'].pk}/rotation", {"rotation": "active"}, format="json")

    assert response.status_code == 409 and "would recognise the cards" in response.json()["detail"]


def test_a_retired_model_nobody_searched_with_may_come_back(models):
    variant_set_rotation(variant=models["l2"], rotation="retired")

    assert variant_set_rotation(variant=models["l2"], rotation="active").rotation == "active"


def test_the_public_uses_staffs_search_model_once_it_is_retired(models, demo_catalog, client, staff):
    retire_histograms(models)
    add_votes(models["l2"], dope=40, nope=0)  # l2 would lead the retired models on the leaderboard
    response = staff.post(f"/api/variants/{models['cosine'].pk}/search-model")
    assert response.status_code == 200 and response.json()["search_model"] is True

    listed = client.get("/api/search/models").json()
    body = search(client, item=demo_catalog[0].pk).json()

    assert listed["default"] == models["cosine"].pk == body["model"]["id"]
    assert {m["id"] for m in listed["models"]} == {models["l2"].pk, models["cosine"].pk}  # both retired
    assert all(m["rotation"] == "retired" for m in listed["models"])


def test_a_search_model_still_in_the_rotation_is_not_used_for_the_public(models, demo_catalog, client):
    variant_set_search_model(variant=models["cosine"])  # chosen, but voters are still judging it

    response = search(client, item=demo_catalog[0].pk)

    assert response.status_code == 503 and Variant.objects.get(pk=models["cosine"].pk).searched_publicly_at is None


def test_only_one_model_is_the_search_model(models):
    variant_set_search_model(variant=models["l2"])
    variant_set_search_model(variant=models["cosine"])

    assert list(Variant.objects.filter(search_model=True).values_list("pk", flat=True)) == [models["cosine"].pk]


def test_the_search_model_can_be_unset_and_is_never_the_random_control(models, staff):
    staff.post(f"/api/variants/{models['l2'].pk}/search-model")

    assert staff.delete(f"/api/variants/{models['l2'].pk}/search-model").status_code == 204
    assert not Variant.objects.filter(search_model=True).exists()
    response = staff.post(f"/api/variants/{models['random'].pk}/search-model")
    assert response.status_code == 400 and "random control" in response.json()["detail"]


def test_choosing_the_search_model_is_staff_only(models, client):
    assert client.post(f"/api/variants/{models['l2'].pk}/search-model").status_code in (401, 403)
    assert not Variant.objects.filter(search_model=True).exists()


def test_staff_search_with_the_live_leader_by_default(models, demo_catalog, staff, settings):
    settings.VSEARCH_MIN_VOTES = 5
    add_votes(models["cosine"], dope=30, nope=2)
    add_votes(models["l2"], dope=5, nope=25)

    listed = staff.get("/api/search/models").json()
    body = search(staff, item=demo_catalog[0].pk).json()

    assert listed["default"] == models["cosine"].pk == body["model"]["id"]
    assert [m["id"] for m in listed["models"]][:2] == [models["cosine"].pk, models["l2"].pk]
    assert models["random"].pk not in [m["id"] for m in listed["models"]]  # it cannot search


def test_search_answers_are_never_cached(models, demo_catalog, staff):
    response = search(staff, item=demo_catalog[0].pk)

    assert response["Cache-Control"] == "private, no-store"


def test_the_admin_cannot_bring_back_a_publicly_searched_model_either(models, demo_catalog, client):
    from django.contrib.auth.models import User
    from django.test import Client

    retire_histograms(models)
    search(client, item=demo_catalog[0].pk, model=models["l2"].pk)
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", password="pw-for-tests-only"))

    form = admin.get(f"/admin/matching/variant/{models['cosine'].pk}/change/")
    resumed = admin.post(
        "/admin/matching/variant/",
        {"action": "resume", "_selected_action": [models["l2"].pk, models["cosine"].pk]},
        follow=True,
    )

    assert form.status_code == 200 and 'name="rotation"' not in form.content.decode()  # shown, not editable
    assert "would recognise the cards" in resumed.content.decode()
    assert set(Variant.objects.exclude(metric="random").values_list("rotation", flat=True)) == {"retired"}
