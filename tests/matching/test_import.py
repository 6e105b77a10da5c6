"""Catalog import from folders and manifests: idempotent, and every bad file reported and skipped."""

from __future__ import annotations

import csv
import json
import os
import threading
import tracemalloc
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


# ---------------------------------------------------------------------------------------- confinement


@pytest.fixture
def secret(tmp_path) -> Path:
    """An image outside the dataset folder, next to it: what a manifest must not publish."""
    return write(tmp_path / "private" / "secret.png", patterned_png(20))


def manifest(folder: Path, paths: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "m.json").write_text(json.dumps([{"path": p, "category": "hat"} for p in paths]))
    return folder / "m.json"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("a path up and out", "is outside the manifest's folder"),
        ("an absolute path", "is outside the manifest's folder"),
        ("a linked file", "is a symbolic link"),
        ("a file in a linked folder", "is a symbolic link"),
    ],
)
def test_a_manifest_naming_an_image_outside_its_folder_is_refused_by_name_and_nothing_is_stored(
    db, tmp_path, secret, isolated_media, case, reason
):
    folder = tmp_path / "dataset"
    write(folder / "ok.png", patterned_png(21))
    (folder / "linked.png").symlink_to(secret)
    (folder / "linked-folder").symlink_to(secret.parent, target_is_directory=True)
    name = {
        "a path up and out": "../private/secret.png",
        "an absolute path": str(secret),
        "a linked file": "linked.png",
        "a file in a linked folder": "linked-folder/secret.png",
    }[case]

    report = catalog_import(source=manifest(folder, ["ok.png", name]))

    assert report.added == 1
    [(rejected, message)] = report.rejected
    assert rejected == name and reason in message and "--allow-outside" in message
    assert Item.objects.get().source == "ok.png"
    assert len(media_files(isolated_media)) == 1


def test_with_allow_outside_the_command_imports_images_outside_the_folder(db, tmp_path, secret, capsys):
    folder = tmp_path / "dataset"
    (folder / "linked.png").parent.mkdir(parents=True)
    (folder / "linked.png").symlink_to(write(tmp_path / "shared" / "other.png", patterned_png(22)))
    path = manifest(folder, ["../private/secret.png", str(secret.parent / "secret.png"), "linked.png"])

    call_command("import_catalog", str(path), "--allow-outside")

    assert "2 added, 1 already in the catalog, 0 skipped." in capsys.readouterr().out


def test_symbolic_links_in_a_folder_import_are_refused_by_name_unless_allowed(db, tmp_path, secret):
    root = tmp_path / "dataset"
    write(root / "hat" / "ok.png", patterned_png(23))
    (root / "hat" / "linked.png").symlink_to(secret)
    (root / "scarf").symlink_to(secret.parent, target_is_directory=True)

    refused = catalog_import(source=root)
    allowed = catalog_import(source=root, allow_outside=True)

    assert refused.added == 1
    assert [(name, reason.split(";")[0]) for name, reason in refused.rejected] == [
        ("hat/linked.png", "is a symbolic link"),
        ("scarf", "is a symbolic link to a folder"),
    ]
    assert (allowed.added, allowed.existing) == (1, 2)  # the secret stored once though reached twice; ok.png again
    assert set(Item.objects.values_list("source", flat=True)) == {"hat/ok.png", "hat/linked.png"}


def test_an_image_over_the_byte_limit_is_refused_before_it_is_read(db, tmp_path, settings):
    settings.VSEARCH_MAX_IMAGE_BYTES = 1024 * 1024
    big = tmp_path / "d" / "hat" / "big.png"
    big.parent.mkdir(parents=True)
    with big.open("wb") as fh:
        fh.truncate(64 * 1024 * 1024)  # sparse: 64 MB to read, nothing on disk

    tracemalloc.start()
    try:
        [(_, message)] = catalog_import(source=tmp_path / "d").rejected
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert message == "file is 67,108,864 bytes, over the limit of 1,048,576"
    assert peak < 2 * 1024 * 1024


def test_a_manifest_naming_a_fifo_is_refused_without_waiting_for_a_writer(db, tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()
    os.mkfifo(folder / "pipe.png")
    done: list = []
    worker = threading.Thread(target=lambda: done.append(catalog_import(source=manifest(folder, ["pipe.png"]))))

    worker.daemon = True  # should it block, it must not keep the test run from ending
    worker.start()
    worker.join(timeout=10)

    assert done, "the import is still waiting on the FIFO"
    assert done[0].rejected == [("pipe.png", "not a regular file")]
