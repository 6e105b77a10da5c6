"""Staff bring new models: weights or embeddings become variants that build and join the rotation.

Every bad upload gets a clear error, and the database and the media folder stay as they were.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from matching.featurizers.finetuned import FineTuneNet, checkpoint
from matching.models import MatchPair, Variant
from tests.matching.conftest import snapshot, upload, weights_file
from voting import sampling
from voting.models import Voter


def test_uploaded_weights_become_one_built_variant_per_metric_in_the_rotation(
    demo_catalog, staff_api, resnet18_weights
):
    response = upload(staff_api, metrics=["l2", "hamming"], file=weights_file(resnet18_weights))

    assert response.status_code == 201, response.json()
    names = [v["name"] for v in response.json()["variants"]]
    assert names == ["my resnet · l2", "my resnet · hamming"]
    variants = list(Variant.objects.filter(name__in=names))
    assert all(v.status == Variant.Status.READY and v.in_rotation for v in variants), [v.error for v in variants]
    assert len({v.feature_set_id for v in variants}) == 1  # features computed once, shared
    assert all(MatchPair.objects.filter(variant=v).count() == 30 * v.k for v in variants)
    assert {v.pk for v in variants} <= {v.variant_id for v in sampling.rotation()}
    assert variants[0].description == "trained on Tuesday"


def test_safetensors_weights_are_accepted(demo_catalog, staff_api, resnet18_weights):
    from safetensors.torch import save

    state = torch.load(io.BytesIO(resnet18_weights), weights_only=True)
    response = upload(staff_api, file=weights_file(save(state), "r18.safetensors"))

    assert response.status_code == 201, response.json()
    assert Variant.objects.get(name="my resnet · l2").status == Variant.Status.READY


def embeddings_npz(items, dim=8, seed=0, **overrides) -> SimpleUploadedFile:
    rng = np.random.default_rng(seed)
    arrays = {"item_ids": np.array([i.pk for i in items]), "embeddings": rng.normal(size=(len(items), dim))}
    arrays.update(overrides)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return SimpleUploadedFile("emb.npz", buffer.getvalue())


def test_uploaded_npz_embeddings_build_without_a_network(demo_catalog, staff_api):
    response = upload(staff_api, kind="embeddings", metrics=["cosine"], file=embeddings_npz(demo_catalog))

    assert response.status_code == 201, response.json()
    variant = Variant.objects.get(name="my resnet · cosine")
    assert variant.status == Variant.Status.READY and variant.feature_set.featurizer == "embeddings"
    assert MatchPair.objects.filter(variant=variant).count() == 30 * variant.k


def test_npy_embeddings_with_an_id_list_and_csv_keyed_by_image_hash_are_accepted(demo_catalog, staff_api):
    vectors = np.random.default_rng(3).normal(size=(len(demo_catalog), 4))
    buffer = io.BytesIO()
    np.save(buffer, vectors)
    ids = "\n".join(str(i.pk) for i in demo_catalog)
    first = upload(
        staff_api,
        kind="embeddings",
        name="npy model",
        file=SimpleUploadedFile("e.npy", buffer.getvalue()),
        ids_file=SimpleUploadedFile("ids.txt", ids.encode()),
    )
    rows = "\n".join(
        f"{i.sha256}," + ",".join(f"{x:.5f}" for x in v) for i, v in zip(demo_catalog, vectors, strict=True)
    )
    second = upload(staff_api, kind="embeddings", name="csv model", file=SimpleUploadedFile("e.csv", rows.encode()))

    assert (first.status_code, second.status_code) == (201, 201), (first.json(), second.json())
    assert (
        Variant.objects.filter(status=Variant.Status.READY, name__in=["npy model · l2", "csv model · l2"]).count() == 2
    )


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/vsearch-pwned",))


def pickled_exploit() -> bytes:
    buffer = io.BytesIO()
    torch.save({"conv1.weight": Exploit()}, buffer, _use_new_zipfile_serialization=True, pickle_module=pickle)
    return buffer.getvalue()


BAD_WEIGHTS = [
    ("not a loadable file", lambda w: weights_file(b"plain text, not a checkpoint"), "cannot be loaded"),
    ("a pickle that runs code", lambda w: weights_file(pickled_exploit()), "would run code"),
    (
        "wrong keys for the architecture",
        lambda w: weights_file(_saved({"fc.weight": torch.zeros(2, 2)})),
        "missing keys",
    ),
    ("wrong shapes", lambda w: weights_file(_reshaped(w)), "wrong shapes"),
    ("an unsupported file type", lambda w: weights_file(b"x", "model.onnx"), ".pt/.pth"),
    ("a checkpoint with compressed records", lambda w: weights_file(_deflated(w)), "has compressed records"),
    ("a checkpoint in the legacy format", lambda w: weights_file(_legacy(w)), "legacy (pre-1.6) format"),
    (
        "a checkpoint whose pickle is cut short",
        lambda w: weights_file(_cut_pickle(_saved({"fc.weight": torch.zeros(2, 2)}))),
        "cannot be loaded as weights: EOFError",
    ),
]


def _cut_pickle(weights: bytes) -> bytes:
    """The same zip with its data.pkl cut to five bytes: torch.load raises an EOFError without a message."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(weights)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data[:5] if info.filename.endswith("data.pkl") else data)
    return buffer.getvalue()


def _deflated(weights: bytes) -> bytes:
    """The same checkpoint with its records deflated: torch.load would expand them whatever size they claim."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(weights)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info), compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
    return buffer.getvalue()


def _legacy(weights: bytes) -> bytes:
    """The same state dict in the pre-1.6 format, whose loader allocates each storage at its declared size."""
    buffer = io.BytesIO()
    torch.save(torch.load(io.BytesIO(weights), weights_only=True), buffer, _use_new_zipfile_serialization=False)
    return buffer.getvalue()


def _saved(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _reshaped(weights: bytes) -> bytes:
    state = torch.load(io.BytesIO(weights), weights_only=True)
    state["fc.weight"] = torch.zeros(10, 512)  # a 10-class head where the architecture has 1000
    return _saved(state)


@pytest.mark.parametrize(("case", "make", "message"), BAD_WEIGHTS, ids=[c[0] for c in BAD_WEIGHTS])
def test_bad_weights_are_refused_with_a_message_and_nothing_is_stored(
    demo_catalog, staff_api, resnet18_weights, isolated_media, case, make, message
):
    Path("/tmp/vsearch-pwned").unlink(missing_ok=True)
    before = snapshot(isolated_media)

    response = upload(staff_api, file=make(resnet18_weights))

    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert snapshot(isolated_media) == before
    assert not Path("/tmp/vsearch-pwned").exists()


def test_an_upload_over_the_size_limit_is_refused(demo_catalog, staff_api, resnet18_weights, settings, isolated_media):
    settings.VSEARCH_MAX_UPLOAD_BYTES = 1000
    before = snapshot(isolated_media)

    response = upload(staff_api, file=weights_file(resnet18_weights))

    assert response.status_code == 400 and "over the upload limit of 1,000" in response.json()["detail"]
    assert snapshot(isolated_media) == before


def _npy(array) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return SimpleUploadedFile("e.npy", buffer.getvalue())


BAD_EMBEDDINGS = [
    (
        "wrong row count",
        lambda items: {"file": embeddings_npz(items, item_ids=np.array([i.pk for i in items[:-1]]))},
        "wrong row count",
    ),
    (
        "unknown item ids",
        lambda items: {"file": embeddings_npz(items, item_ids=np.arange(10_000, 10_000 + len(items)))},
        "not in the catalog",
    ),
    (
        "wrong dimension",
        lambda items: {"file": _npy(np.zeros((len(items), 2, 2))), "ids_file": SimpleUploadedFile("ids.txt", b"1\n")},
        "2-D array",
    ),
    (
        "ragged csv rows",
        lambda items: {"file": SimpleUploadedFile("e.csv", f"{items[0].pk},1,2\n{items[1].pk},1\n".encode())},
        "wrong dimension",
    ),
    (
        "NaN values",
        lambda items: {"file": embeddings_npz(items, embeddings=np.full((len(items), 3), np.nan))},
        "NaN or Inf",
    ),
    (
        "Inf values",
        lambda items: {"file": embeddings_npz(items, embeddings=np.full((len(items), 3), np.inf))},
        "NaN or Inf",
    ),
    (
        "values beyond float32",  # finite as float64, inf as the float32 that would be stored
        lambda items: {"file": embeddings_npz(items, embeddings=np.full((len(items), 3), 1e39))},
        "NaN or Inf",
    ),
    ("npy without an id list", lambda items: {"file": _npy(np.zeros((3, 3)))}, "needs an item-id list"),
    (
        "npz without the arrays",
        lambda items: {"file": SimpleUploadedFile("e.npz", _npz_bytes(x=np.zeros(3)))},
        "must hold",
    ),
    (
        "a pickled object array",
        lambda items: {
            "file": SimpleUploadedFile("e.npy", _pickled_npy()),
            "ids_file": SimpleUploadedFile("ids.txt", b"1\n"),
        },
        "not a plain numeric",
    ),
]


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _pickled_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([Exploit()], dtype=object), allow_pickle=True)
    return buffer.getvalue()


@pytest.mark.parametrize(("case", "make", "message"), BAD_EMBEDDINGS, ids=[c[0] for c in BAD_EMBEDDINGS])
def test_bad_embeddings_are_refused_with_a_message_and_nothing_is_stored(
    demo_catalog, staff_api, isolated_media, case, make, message
):
    before = snapshot(isolated_media)

    response = upload(staff_api, kind="embeddings", **make(demo_catalog))

    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert snapshot(isolated_media) == before


def test_a_name_already_taken_is_refused(demo_catalog, staff_api, isolated_media):
    assert upload(staff_api, kind="embeddings", file=embeddings_npz(demo_catalog)).status_code == 201
    before = snapshot(isolated_media)

    response = upload(staff_api, kind="embeddings", file=embeddings_npz(demo_catalog, seed=1))

    assert response.status_code == 400 and "already taken" in response.json()["detail"]
    assert snapshot(isolated_media) == before


@pytest.mark.parametrize("who", ["anonymous", "voter account"])
def test_anonymous_and_non_staff_users_are_refused_on_the_api_and_the_page(demo_catalog, client, who, isolated_media):
    api = APIClient()
    if who == "voter account":
        user = User.objects.create_user("val", password="pw-for-tests-only")
        api.force_authenticate(user)
        client.force_login(user)
    before = snapshot(isolated_media)

    api_response = upload(api, kind="embeddings", file=embeddings_npz(demo_catalog))
    page = client.get("/staff/")

    assert api_response.status_code in (401, 403)
    assert api.get("/api/variants").status_code in (401, 403)
    if who == "anonymous":
        assert page.status_code == 302 and "/admin/login/" in page["Location"]
    else:
        assert page.status_code == 403
    assert snapshot(isolated_media) == before


def test_the_staff_page_form_uploads_with_csrf_and_shows_errors(demo_catalog, isolated_media):
    from django.test import Client

    user = User.objects.create_user("sue", password="pw-for-tests-only", is_staff=True)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    page = browser.get("/staff/")
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else browser.cookies["csrftoken"].value
    data = {"kind": "embeddings", "name": "form model", "metrics": ["l1"], "file": embeddings_npz(demo_catalog)}

    without_csrf = browser.post("/staff/", data)
    assert without_csrf.status_code == 403 and not Variant.objects.exists()

    data["file"] = embeddings_npz(demo_catalog)
    done = browser.post("/staff/", {**data, "csrfmiddlewaretoken": token}, follow=True)
    assert done.status_code == 200 and "Building now" in done.content.decode()
    assert Variant.objects.get(name="form model · l1").status == Variant.Status.READY

    data["file"] = embeddings_npz(demo_catalog)
    again = browser.post("/staff/", {**data, "csrfmiddlewaretoken": token})
    assert again.status_code == 400 and "already taken" in again.content.decode()


def test_pause_retire_and_resume_change_the_rotation_and_keep_votes_and_pairs(demo_catalog, staff_api):
    upload(staff_api, kind="embeddings", file=embeddings_npz(demo_catalog))
    variant = Variant.objects.get()
    voter = Voter.objects.create()
    card = sampling.pair_next_for(voter=voter)
    from voting.models import Vote

    Vote.objects.create(voter=voter, pair_id=card.pair_id, dope=True, token_id="t1")
    pairs = MatchPair.objects.filter(variant=variant).count()

    for rotation, in_rotation in [("paused", False), ("active", True), ("retired", False)]:
        response = staff_api.post(f"/api/variants/{variant.pk}/rotation", {"rotation": rotation}, format="json")
        assert response.status_code == 200 and response.json()["rotation"] == rotation
        assert (variant.pk in {v.variant_id for v in sampling.rotation()}) is in_rotation

    assert Vote.objects.count() == 1 and MatchPair.objects.filter(variant=variant).count() == pairs
    leaderboard = staff_api.get("/api/leaderboard").json()["rows"]  # live: staff
    assert [(r["status"], r["votes"]) for r in leaderboard] == [("retired", 1)]


def test_a_new_variant_is_marked_new_on_the_leaderboard(demo_catalog, staff_api):
    upload(staff_api, kind="embeddings", file=embeddings_npz(demo_catalog))

    [row] = APIClient().get("/api/leaderboard").json()["rows"]

    assert row["is_new"] is True and row["description"] == "trained on Tuesday"


# ---------------------------------------------------------------------------------------- fine-tuned checkpoints


DROP = object()  # a change that removes the key


def finetuned_checkpoint(**changes) -> dict:
    """A small train_featurizer checkpoint (resnet18, 8-d feature layer, two classes, 32 px), then `changes`."""
    torch.manual_seed(0)
    model = FineTuneNet("resnet18", hidden_dim=8, n_classes=2)
    data = checkpoint(model, backbone="resnet18", classes=["bag", "hat"], input_size=32, accuracy=0.5)
    for key, value in changes.items():
        if value is DROP:
            del data[key]
        else:
            data[key] = value
    return data


def _without(key: str) -> dict:
    state = finetuned_checkpoint()["state_dict"]
    del state[key]
    return state


BAD_CHECKPOINTS = [
    ("no backbone", {"backbone": DROP}, "backbone is None; it must be one of resnet18, resnet50"),
    ("an unknown backbone", {"backbone": "vgg16"}, "backbone is 'vgg16'"),
    ("hidden_dim that is not a number", {"hidden_dim": "abc"}, "hidden_dim is 'abc', not a whole number"),
    ("a huge hidden_dim", {"hidden_dim": 100_000}, "hidden_dim is 100000, not a whole number in 1..16,384"),
    ("hidden_dim that differs from its tensors", {"hidden_dim": 16}, "hidden.weight is (8, 512), but"),
    ("classes that are not a list", {"classes": 3}, "classes must be a list of at least two category names"),
    ("input_size as text", {"input_size": "64"}, "input_size is '64'"),
    ("a tiny input_size", {"input_size": 4}, "input_size is 4, not a whole number in 32..1,024"),
    ("no state_dict", {"state_dict": DROP}, "has no state_dict of tensors"),
    ("a state_dict without the head", {"state_dict": _without("head.weight")}, "has no tensor head.weight"),
]


@pytest.mark.parametrize(("case", "changes", "message"), BAD_CHECKPOINTS, ids=[c[0] for c in BAD_CHECKPOINTS])
def test_a_malformed_finetuned_checkpoint_gets_a_400_naming_the_problem_and_nothing_is_stored(
    demo_catalog, staff_api, isolated_media, case, changes, message
):
    before = snapshot(isolated_media)
    file = weights_file(_saved(finetuned_checkpoint(**changes)), "ft.pt")

    response = upload(staff_api, architecture="finetuned", layer="hidden", file=file)

    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith("ft.pt")
    assert message in response.json()["detail"]
    assert snapshot(isolated_media) == before


def test_a_finetuned_checkpoint_is_accepted_and_builds(demo_catalog, staff_api):
    file = weights_file(_saved(finetuned_checkpoint()), "ft.pt")

    response = upload(staff_api, architecture="finetuned", layer="hidden", file=file)

    assert response.status_code == 201, response.json()
    variant = Variant.objects.get(name="my resnet · l2")
    assert variant.status == Variant.Status.READY and variant.feature_set.dim == 8, variant.error
