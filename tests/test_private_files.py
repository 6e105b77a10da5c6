"""Only catalog images are public: build files live outside the media root and are never served."""

from __future__ import annotations

import importlib

import pytest

from matching.models import Variant
from matching.services import variant_create


@pytest.fixture
def built(demo_catalog) -> Variant:
    variant = variant_create(featurizer="colour-histogram", layer="hsv", metric="l2", k=3)
    assert variant.status == Variant.Status.READY, variant.error
    return variant


def test_features_and_indexes_are_written_outside_the_public_media_root(built, isolated_media, isolated_private):
    public = {p.relative_to(isolated_media).parts[0] for p in isolated_media.rglob("*") if p.is_file()}
    private = {p.relative_to(isolated_private).parts[0] for p in isolated_private.rglob("*") if p.is_file()}

    assert public == {"items"}
    assert {"features", "indexes"} <= private
    assert (isolated_private / built.feature_set.path).exists() and (isolated_private / built.index_path).exists()


def test_the_media_url_of_a_features_file_or_an_index_is_404(built, client, isolated_media, isolated_private):
    features, index = built.feature_set.path, built.index_path
    # Even a copy left inside the media root by an old install is not served.
    for relative in (features, index):
        (isolated_media / relative).parent.mkdir(parents=True, exist_ok=True)
        (isolated_media / relative).write_bytes((isolated_private / relative).read_bytes())

    for relative in (features, index, "features/colour-histogram/none/ids.npy", "weights/x.pt", "../private/" + index):
        assert client.get(f"/media/{relative}").status_code == 404, relative
    assert client.get(f"/media/{demo_catalog_image(built)}").status_code == 200


def demo_catalog_image(variant: Variant) -> str:
    return variant.pairs.select_related("pair__query_item").first().pair.query_item.image


def test_an_old_install_has_its_build_files_moved_out_of_the_media_root_and_keeps_working(
    built, isolated_media, isolated_private
):
    # As earlier versions left them: every build file under the media root.
    for path in sorted(p for p in isolated_private.rglob("*") if p.is_file()):
        target = isolated_media / path.relative_to(isolated_private)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
    migration = importlib.import_module("matching.migrations.0006_build_files_private")

    migration.forwards(None, None)
    migration.forwards(None, None)  # a second run changes nothing

    assert {p.relative_to(isolated_media).parts[0] for p in isolated_media.rglob("*") if p.is_file()} == {"items"}
    built.refresh_from_db()
    assert (isolated_private / built.feature_set.path).exists() and (isolated_private / built.index_path).exists()
    from matching.pipeline import variant_build_inline

    Variant.objects.filter(pk=built.pk).update(status=Variant.Status.QUEUED)
    assert variant_build_inline(variant_id=built.pk).status == Variant.Status.READY


def test_a_private_root_inside_the_media_root_is_refused_at_start(tmp_path):
    from tests.test_settings import django_setup_with

    result = django_setup_with(
        tmp_path, VSEARCH_MEDIA_ROOT=str(tmp_path / "media"), VSEARCH_PRIVATE_ROOT=str(tmp_path / "media" / "private")
    )

    assert result.returncode != 0 and "is inside the public media root" in result.stderr
