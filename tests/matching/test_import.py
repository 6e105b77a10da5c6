"""Catalog import from folders and manifests: idempotent, and every bad file reported and skipped."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from matching.catalog import SourceError
from matching.models import Item
from matching.services import catalog_import
from tests.conftest import patterned_png, png_bytes


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "dataset"
    write(root / "bottle" / "2008_000112.jpg", patterned_png(1))
    write(root / "bottle" / "2008_000113.png", patterned_png(2))
    write(root / "shoe" / "a.png", patterned_png(3))
    return root


def media_files(media_root: Path) -> set[Path]:
    return {p.relative_to(media_root) for p in media_root.rglob("*") if p.is_file()} if media_root.exists() else set()


def test_folder_import_uses_subfolders_as_categories(db, folder, isolated_media):
    report = catalog_import(source=folder)

    assert (report.added, report.existing, report.rejected) == (3, 0, [])
    assert sorted(Item.objects.values_list("category", flat=True)) == ["bottle", "bottle", "shoe"]
    item = Item.objects.get(source="shoe/a.png")
    assert (item.width, item.height) == (48, 48)
    assert (isolated_media / item.image).read_bytes() == patterned_png(3)
    assert item.image.startswith(f"items/{item.sha256[:2]}/{item.sha256}")


def test_reimporting_the_same_folder_adds_nothing(db, folder, isolated_media):
    catalog_import(source=folder)
    files_before = media_files(isolated_media)

    report = catalog_import(source=folder)

    assert (report.added, report.existing) == (0, 3)
    assert Item.objects.count() == 3
    assert media_files(isolated_media) == files_before


def test_the_same_bytes_in_two_places_are_stored_once(db, tmp_path, isolated_media):
    write(tmp_path / "d" / "hat" / "one.png", patterned_png(9))
    write(tmp_path / "d" / "hat" / "copy.png", patterned_png(9))

    report = catalog_import(source=tmp_path / "d")

    assert (report.added, report.existing) == (1, 1)
    assert len([p for p in media_files(isolated_media) if p.parts[0] == "items"]) == 1


def test_csv_manifest_brings_attributes_and_bbox_and_the_crop_is_a_separate_item(db, tmp_path):
    write(tmp_path / "img" / "a.png", patterned_png(4))
    with (tmp_path / "manifest.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "category", "attributes", "bbox"])
        writer.writerow(["img/a.png", "dress", json.dumps({"colour": "red"}), ""])
        writer.writerow(["img/a.png", "bag", "{}", "4,5,30,40"])

    report = catalog_import(source=tmp_path / "manifest.csv")

    assert report.added == 2, report.rejected
    full, crop = Item.objects.order_by("id")
    assert full.attributes == {"colour": "red"} and full.bbox is None
    assert crop.category == "bag" and crop.bbox == [4, 5, 30, 40]
    assert full.image == crop.image  # one file, two items


def test_json_manifest_is_read(db, tmp_path):
    write(tmp_path / "x.png", patterned_png(5))
    (tmp_path / "m.json").write_text(json.dumps([{"path": "x.png", "category": "scarf", "bbox": [0, 0, 10, 10]}]))

    report = catalog_import(source=tmp_path / "m.json")

    assert report.added == 1
    assert Item.objects.get().bbox == [0, 0, 10, 10]


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("notes.png", b"this is text, not pixels", "not an image"),
        ("empty.png", b"", "empty file"),
        ("truncated.png", patterned_png(6)[:200], "truncated"),
        ("huge.png", png_bytes(size=(300, 300)), "over the limit"),
        ("icon.ico", None, "not accepted"),
    ],
)
def test_each_kind_of_bad_file_is_reported_by_name_and_nothing_is_stored(
    db, tmp_path, settings, isolated_media, name, data, reason
):
    settings.VSEARCH_MAX_IMAGE_PIXELS = 250 * 250
    root = tmp_path / "d"
    if data is None:
        (root / "hat").mkdir(parents=True)
        Image.new("RGB", (16, 16)).save(root / "hat" / name, format="ICO")
    else:
        write(root / "hat" / name, data)

    report = catalog_import(source=root)

    assert report.added == 0
    [(rejected_name, message)] = report.rejected
    assert rejected_name == f"hat/{name}"
    assert reason in message
    assert Item.objects.count() == 0
    assert media_files(isolated_media) == set()


def test_a_file_over_the_byte_limit_is_refused(db, tmp_path, settings):
    settings.VSEARCH_MAX_IMAGE_BYTES = 100
    write(tmp_path / "d" / "hat" / "big.png", patterned_png(7))

    [(_, message)] = catalog_import(source=tmp_path / "d").rejected

    assert "over the limit of 100" in message


def test_bbox_outside_the_image_is_reported_and_skipped(db, tmp_path, isolated_media):
    write(tmp_path / "a.png", patterned_png(8))  # 48 x 48
    (tmp_path / "m.json").write_text(json.dumps([{"path": "a.png", "category": "coat", "bbox": [10, 10, 60, 20]}]))

    report = catalog_import(source=tmp_path / "m.json")

    assert Item.objects.count() == 0
    assert "outside" in report.rejected[0][1]
    assert media_files(isolated_media) == set()


def test_manifest_rows_without_category_or_with_missing_files_are_reported(db, tmp_path):
    write(tmp_path / "ok.png", patterned_png(10))
    (tmp_path / "m.json").write_text(
        json.dumps(
            [
                {"path": "ok.png", "category": ""},
                {"path": "gone.png", "category": "hat"},
                {"path": "ok.png", "category": "hat", "bbox": "1,2,x,4"},
            ]
        )
    )

    report = catalog_import(source=tmp_path / "m.json")

    reasons = [r for _, r in report.rejected]
    assert report.added == 0
    assert reasons[0] == "no category"
    assert "cannot be read" in reasons[1]
    assert "not four numbers" in reasons[2]


def test_files_outside_category_folders_are_reported(db, tmp_path):
    write(tmp_path / "d" / "loose.png", patterned_png(11))

    assert catalog_import(source=tmp_path / "d").rejected == [
        ("loose.png", "not inside a category folder (expected CATEGORY/image.jpg)")
    ]


def test_manifest_without_required_columns_is_refused_as_a_whole(db, tmp_path):
    (tmp_path / "m.csv").write_text("file,label\na.png,hat\n")

    with pytest.raises(SourceError, match="needs the columns path and category"):
        catalog_import(source=tmp_path / "m.csv")


def test_command_prints_a_summary_and_each_skipped_file(db, folder, capsys):
    (folder / "shoe" / "broken.jpg").write_bytes(b"nope")

    call_command("import_catalog", str(folder))

    out, err = capsys.readouterr()
    assert "3 added, 0 already in the catalog, 1 skipped." in out
    assert "skipped shoe/broken.jpg: not an image" in err


def test_command_fails_clearly_for_a_missing_path(db, tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("import_catalog", str(tmp_path / "nowhere"))


def test_make_demo_catalog_imports_every_category_once_and_a_rerun_does_nothing(db, capsys, isolated_media):
    call_command("make_demo_catalog", n=20, seed=1, size=48, verbosity=0)
    first = capsys.readouterr().out
    files = media_files(isolated_media)

    call_command("make_demo_catalog", n=20, seed=1, size=48, verbosity=0)

    assert "20 demo items added" in first
    assert "already there" in capsys.readouterr().out
    assert Item.objects.count() == 20 and len(set(Item.objects.values_list("category", flat=True))) == 10
    assert media_files(isolated_media) == files
    assert set(Item.objects.values_list("attributes__pattern", flat=True)) <= {
        "solid", "stripes", "checks", "polka dots", "plaid"
    }  # fmt: skip
