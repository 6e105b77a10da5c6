"""Build files leave the public media root: features, indexes, weights and uploads move to the private storage.

Rows keep their relative paths (features/..., indexes/..., weights/..., uploads/...), which now resolve under
VSEARCH_PRIVATE_ROOT, so they stay valid. Idempotent: a file already at its new place is left alone (and its
public copy removed); reversing moves them back.
"""

import os
import shutil
from pathlib import Path

from django.conf import settings
from django.db import migrations, models

BUILD_FOLDERS = ("features", "indexes", "weights", "uploads")


def _move_tree(source_root: Path, target_root: Path) -> None:
    for folder in BUILD_FOLDERS:
        source = source_root / folder
        if not source.is_dir():
            continue
        for path in sorted(p for p in source.rglob("*") if p.is_file() or p.is_symlink()):
            target = target_root / path.relative_to(source_root)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                path.unlink()  # already moved (an interrupted earlier run): keep the private copy
            elif _same_device(path, target.parent):
                os.replace(path, target)
            else:
                shutil.move(path, target)
        shutil.rmtree(source, ignore_errors=True)


def _same_device(path: Path, folder: Path) -> bool:
    return path.stat().st_dev == folder.stat().st_dev


def forwards(apps, schema_editor):
    _move_tree(Path(settings.MEDIA_ROOT), Path(settings.VSEARCH_PRIVATE_ROOT))


def backwards(apps, schema_editor):
    _move_tree(Path(settings.VSEARCH_PRIVATE_ROOT), Path(settings.MEDIA_ROOT))


class Migration(migrations.Migration):
    dependencies = [("matching", "0005_build_claims")]

    operations = [
        migrations.AlterField(
            model_name="featureset",
            name="path",
            field=models.CharField(
                blank=True, help_text=".npy in the private build storage; item ids beside it.", max_length=255
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]
