"""Every write to the catalog and to variants goes through here."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, ProtectedError, Q
from django.db.models.functions import Coalesce, Now
from PIL import Image, ImageEnhance, ImageOps

from matching import dispatch, selectors, signals
from matching.catalog import BadImage, Entry, check_bbox, check_image, entries_from, read_image_file
from matching.features import array_save
from matching.featurizers import REGISTRY, UNTRAINED, FeaturizerError, spec_for
from matching.models import FeatureSet, Item, MatchPair, Metric, Variant, search_label
from matching.storage import AtomicFile, item_image_name, media_path, private_path, write_atomic
from matching.uploads import EMBEDDING_SUFFIXES, WEIGHT_SUFFIXES, UploadError, check_weights, read_embeddings
from vsearch_site.errors import Conflict, InvalidInput

log = logging.getLogger(__name__)


@dataclass
class ImportReport:
    added: int = 0
    existing: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.added + self.existing + len(self.rejected)


def catalog_import(
    *, source: Path, allow_outside: bool = False, progress: Callable[[int, int], None] | None = None
) -> ImportReport:
    """Import a folder of category folders or a CSV/JSON manifest. Re-importing adds nothing.

    Each bad file is reported by name with the reason and skipped; nothing of it is stored. Images outside the
    folder (the manifest's folder) or reached through a symbolic link are refused unless `allow_outside`.
    """
    entries = entries_from(Path(source), allow_outside=allow_outside)
    report = ImportReport()
    for done, entry in enumerate(entries, start=1):
        if isinstance(entry, tuple):
            report.rejected.append(entry)
        else:
            try:
                created = item_add(entry=entry)
            except BadImage as exc:
                report.rejected.append((entry.source or str(entry.path), str(exc)))
            else:
                if created:
                    report.added += 1
                else:
                    report.existing += 1
        if progress:
            progress(done, len(entries))
    return report


def item_add(*, entry: Entry, data: bytes | None = None) -> bool:
    """Store one image and its item. Returns False if that image and crop are already in the catalog."""
    if data is None:
        data = read_image_file(entry.path, max_bytes=settings.VSEARCH_MAX_IMAGE_BYTES)
    return _item_store(entry=entry, data=data, role=Item.Role.CATALOG) is not None


def _item_store(*, entry: Entry, data: bytes, role: str) -> Item | None:
    """Check and store an image (content-addressed under items/) and its row; None if it is already there."""
    checked = check_image(
        data, max_bytes=settings.VSEARCH_MAX_IMAGE_BYTES, max_pixels=settings.VSEARCH_MAX_IMAGE_PIXELS
    )
    bbox = check_bbox(entry.bbox, checked.width, checked.height)
    crop_key = ",".join(map(str, bbox)) if bbox else ""
    if Item.everything.filter(sha256=checked.sha256, crop_key=crop_key).exists():
        return None

    name = item_image_name(checked.sha256, checked.extension)
    wrote_file = not media_path(name).exists()
    if wrote_file:
        write_atomic(media_path(name), checked.data)
    try:
        with transaction.atomic():
            return Item.everything.create(
                sha256=checked.sha256,
                image=name,
                category=entry.category,
                attributes=entry.attributes,
                bbox=list(bbox) if bbox else None,
                crop_key=crop_key,
                source=entry.source[:500],
                width=checked.width,
                height=checked.height,
                role=role,
            )
    except IntegrityError:
        # A concurrent import stored the same image and crop first.
        return None
    except BaseException:
        if wrote_file and not Item.everything.filter(image=name).exists():
            media_path(name).unlink(missing_ok=True)
        raise


class ItemProtected(Conflict):
    """Deleting the item would take votes (or a gold card) with it."""


def item_delete(*, item: Item) -> None:
    """Delete a catalog item with the cards it is on, unless a vote or a gold card is on one of them (Vote.pair and
    GoldCard.pair PROTECT them): votes are the measurement, so a voted item stays in the catalog.

    Ready models keep working without it: its rows leave their pairs (a query that lost a neighbour has one fewer
    until refreshed), feature files keep its row until the next featurizing run but every read leaves it out, and the
    models show as stale (items removed) until refreshed. No vote is on a card that goes, so no tally changes.
    """
    touched = list(
        MatchPair.objects.filter(Q(query_item=item) | Q(pair__match_item=item))
        .values_list("variant_id", flat=True)
        .distinct()
    )
    try:
        with transaction.atomic():
            item.delete()
    except ProtectedError as exc:
        kinds: dict[str, int] = {}
        for obj in exc.protected_objects:
            kinds[obj._meta.verbose_name] = kinds.get(obj._meta.verbose_name, 0) + 1
        what = ", ".join(f"{n} {name}{'s' if n > 1 else ''}" for name, n in sorted(kinds.items()))
        raise ItemProtected(f"Item #{item.pk} cannot be deleted: {what} on its cards would go with it.") from None
    for variant_id in touched:
        _rotation_changed(variant_id)  # serving drops the card counts it cached


def gold_copy_add(*, item: Item, rng: np.random.Generator) -> Item:
    """An altered copy of a catalog item (mirrored, cropped a little, colours nudged), stored and served exactly
    like a catalog image but outside the catalog: the match of a known-dope gold card."""
    with Image.open(media_path(item.image)) as original:
        image = original.convert("RGB")
    width, height = image.size
    for _ in range(8):  # a copy whose bytes collide with a stored image (vanishingly rare): alter it again
        altered = image
        if rng.random() < 0.5:
            altered = ImageOps.mirror(altered)
        keep = rng.uniform(0.86, 0.95)
        left, top = rng.uniform(0, 1 - keep) * width, rng.uniform(0, 1 - keep) * height
        box = (int(left), int(top), int(left + keep * width), int(top + keep * height))
        altered = altered.crop(box).resize((width, height), Image.Resampling.BICUBIC)
        for enhance in (ImageEnhance.Brightness, ImageEnhance.Color, ImageEnhance.Contrast):
            altered = enhance(altered).enhance(rng.uniform(0.9, 1.1))
        buffer = io.BytesIO()
        altered.save(buffer, format="PNG")
        entry = Entry(path=Path(item.image), category=item.category, attributes=item.attributes, source="gold copy")
        copy = _item_store(entry=entry, data=buffer.getvalue(), role=Item.Role.GOLD_COPY)
        if copy is not None:
            return copy
    raise BadImage(f"could not make an altered copy of item #{item.pk} that differs from every stored image")


# ---------------------------------------------------------------------------------------- variants


class VariantError(InvalidInput):
    """A variant cannot be created as asked; the message says why."""


def feature_set_get_or_create(*, featurizer: str, layer: str, weights: str) -> FeatureSet:
    try:
        spec = spec_for(featurizer, layer)
    except FeaturizerError as exc:
        raise VariantError(str(exc)) from None
    if not spec.uses_weights:
        weights = UNTRAINED
    feature_set, _ = FeatureSet.objects.get_or_create(featurizer=featurizer, layer=layer, weights=weights)
    return feature_set


def _default_layer(featurizer: str) -> str:
    if featurizer not in REGISTRY:
        raise VariantError(f"Unknown featurizer {featurizer!r}; known: {', '.join(REGISTRY)}.")
    return REGISTRY[featurizer].layer_names[0]


MAX_TREES = 1000  # Annoy's build time and index size grow linearly in trees; 50 already reach recall 0.98 at 10k


def variant_display_name(
    feature_set: FeatureSet | None, metric: str, *, search: str = "auto", n_trees: int = 50, search_k: int = -1
) -> str:
    """What the variant is, spelled out: `vgg16/fc6 · untrained · hamming`, with its search method when staff chose
    one: `vgg16/fc6 · untrained · l2 · annoy 10 trees`."""
    if feature_set is None:
        return "random pairs (control)"
    if feature_set.featurizer == "colour-histogram":
        base = f"colour histogram · {metric}"
    else:
        base = f"{feature_set.featurizer}/{feature_set.layer} · {feature_set.weights_label} · {metric}"
    return with_search(base, search, n_trees, search_k)


def with_search(name: str, search: str, n_trees: int, search_k: int) -> str:
    """A name with its search method spelled out after it (nothing for auto)."""
    return name if search == Variant.Search.AUTO else f"{name} · {search_label(search, n_trees, search_k)}"


def check_search(*, metric: str, search: str, n_trees: int, search_k: int) -> None:
    """A search method a variant can have; VariantError says what is wrong."""
    if search not in Variant.Search.values:
        raise VariantError(f"Unknown search {search!r}; choose one of {', '.join(Variant.Search.values)}.")
    if metric == Metric.RANDOM and search != Variant.Search.AUTO:
        raise VariantError("The random control draws its pairs: it has no search method.")
    if not 1 <= n_trees <= MAX_TREES:
        raise VariantError(f"n_trees must be between 1 and {MAX_TREES}.")
    if search_k != -1 and search_k < 1:
        raise VariantError("search_k must be -1 (calibrated per build) or at least 1.")


def variant_create(
    *,
    featurizer: str | None = None,
    layer: str | None = None,
    weights: str = "none",
    metric: str,
    name: str | None = None,
    description: str = "",
    search: str = "auto",
    n_trees: int = 50,
    search_k: int = -1,
    k: int = 5,
    sample_size: int | None = None,
    seed: int = 0,
    build: bool = True,
) -> Variant:
    """Create a variant (reusing features with the same source) and queue its build. `search` forces its pairs to
    come from exact search or from Annoy (n_trees, search_k) whatever the catalog's size; auto decides by size."""
    if metric not in Metric.values:
        raise VariantError(f"Unknown metric {metric!r}; choose one of {', '.join(Metric.values)}.")
    if k < 1 or n_trees < 1:
        raise VariantError("k and n_trees must be at least 1.")
    check_search(metric=metric, search=search, n_trees=n_trees, search_k=search_k)
    with transaction.atomic():
        feature_set = None
        if metric != Metric.RANDOM:
            if not featurizer:
                raise VariantError("A variant needs a featurizer unless its metric is random.")
            feature_set = feature_set_get_or_create(
                featurizer=featurizer, layer=layer or _default_layer(featurizer), weights=weights
            )
        _refuse_if_searched(feature_set.pk if feature_set else None)
        name = name or variant_display_name(feature_set, metric, search=search, n_trees=n_trees, search_k=search_k)
        if Variant.objects.filter(name=name).exists():
            raise VariantError(f"A variant named {name!r} already exists.")
        variant = Variant.objects.create(
            name=name,
            description=description,
            feature_set=feature_set,
            metric=metric,
            search=search,
            n_trees=n_trees,
            search_k=search_k,
            k=k,
            sample_size=sample_size,
            seed=seed,
        )
    if build:
        # Outside the block: an eager build must not run (and fail) inside the transaction that creates the row.
        dispatch.enqueue_build(variant.pk)  # after commit; inline in eager mode
    variant.refresh_from_db()
    return variant


def variant_rebuild(*, variant: Variant) -> Variant:
    """Queue a failed (or stuck) variant again; finished steps are skipped, half-done ones resume."""
    if variant.status == Variant.Status.READY:
        return variant
    if variant.feature_set_id:
        FeatureSet.objects.filter(pk=variant.feature_set_id, status=FeatureSet.Status.FAILED).update(
            status=FeatureSet.Status.QUEUED, error=""
        )
    Variant.objects.filter(pk=variant.pk).update(
        status=Variant.Status.QUEUED, stage=Variant.Stage.QUEUED, error="", claimed_by=""
    )
    _rotation_changed(variant.pk)
    dispatch.enqueue_build(variant.pk)
    variant.refresh_from_db()
    return variant


class SearchChangeRefused(Conflict):
    """The variant's pairs cannot be rebuilt now (votes on them, or a build under way)."""


def variant_set_search(
    *, variant: Variant, search: str, n_trees: int | None = None, search_k: int | None = None, as_new: bool = False
) -> Variant:
    """Staff choose how a model's pairs are found: exact search, or Annoy with n_trees/search_k, at any catalog size
    (auto: by size). The name follows (`… · l2 · annoy 10 trees`) and the pairs are built again.

    In place, only for a model without votes (its votes were cast on the pairs it has: changing them under the votes
    would mix two models in one row) and not while it builds. `as_new` adds a new model with the same features and
    this search method instead, so voters can judge, blind, whether approximate search costs approval."""
    n_trees = variant.n_trees if n_trees is None else n_trees
    search_k = variant.search_k if search_k is None else search_k
    check_search(metric=variant.metric, search=search, n_trees=n_trees, search_k=search_k)
    base = _without_search(variant)
    name = with_search(base, search, n_trees, search_k)
    if as_new:
        if Variant.objects.filter(name=name).exists():
            raise VariantError(f"A variant named {name!r} already exists.")
        with transaction.atomic():
            twin = Variant.objects.create(
                name=name,
                description=variant.description,
                feature_set=variant.feature_set,
                metric=variant.metric,
                search=search,
                n_trees=n_trees,
                search_k=search_k,
                k=variant.k,
                sample_size=variant.sample_size,
                seed=variant.seed,
            )
        dispatch.enqueue_build(twin.pk)
        twin.refresh_from_db()
        return twin
    if variant.status in (Variant.Status.QUEUED, Variant.Status.RUNNING):
        raise SearchChangeRefused(f"{variant.name} is being built: change its search method once the build is over.")
    reasons = signals.deletion_blockers(variant)
    if reasons:
        raise SearchChangeRefused(
            f"{variant.name} has {'; '.join(reasons)}: they were cast on the pairs it has now. Add a new model with "
            "this search method instead (as_new)."
        )
    if name != variant.name and Variant.objects.filter(name=name).exclude(pk=variant.pk).exists():
        raise VariantError(f"A variant named {name!r} already exists.")
    with transaction.atomic():
        MatchPair.objects.filter(variant_id=variant.pk).delete()
        Variant.objects.filter(pk=variant.pk).update(
            name=name,
            search=search,
            n_trees=n_trees,
            search_k=search_k,
            # Another forest needs another index; the same one is kept (variant_index skips it).
            index_path="" if n_trees != variant.n_trees else variant.index_path,
            search_k_used=None,
            pairs_search="",
            status=Variant.Status.QUEUED,
            stage=Variant.Stage.QUEUED,
            progress=0.0,
            error="",
            claimed_by="",
            p_at_1=None,
            p_at_k=None,
            recall_at_k=None,
            ready_at=None,
        )
        _rotation_changed(variant.pk)
    dispatch.enqueue_build(variant.pk)
    variant.refresh_from_db()
    return variant


class VariantNotReady(Conflict):
    """Only a ready model is refreshed."""


def variant_refresh(*, variant: Variant) -> Variant:
    """Bring a ready model up to the catalog as it is now (the same build steps, matching.pipeline): featurize only
    the items its features lack, build its index again, and redo the pairs of new queries, of queries that lost a
    neighbour and of queries an added item comes nearer to. It stays ready and in the rotation meanwhile; the pairs
    that stay keep their rows, so votes on them keep counting (the tallies are recounted when it is done).
    Asking again while a refresh is under way changes nothing."""
    if variant.status != Variant.Status.READY:
        raise VariantNotReady(
            f"{variant.name} is {variant.status}: only a ready model is refreshed (a build under way covers the "
            "catalog as it is when it featurizes; a failed one is built again)."
        )
    if Variant.objects.filter(pk=variant.pk, status=Variant.Status.READY, stage=Variant.Stage.READY).update(
        stage=Variant.Stage.QUEUED, progress=0.0, error=""
    ):
        dispatch.enqueue_build(variant.pk)
    variant.refresh_from_db()
    return variant


def _without_search(variant: Variant) -> str:
    """The variant's name without the search method its name spells out (if it does)."""
    suffix = f" · {search_label(variant.search, variant.n_trees, variant.search_k)}"
    if variant.search != Variant.Search.AUTO and variant.name.endswith(suffix):
        return variant.name[: -len(suffix)]
    return variant.name


def variants_refresh_stale() -> list[Variant]:
    """Refresh every ready model that does not cover the catalog (selectors.stale_variants)."""
    return [variant_refresh(variant=variant) for variant, _ in selectors.stale_variants()]


def variant_set_rotation(*, variant: Variant, rotation: str) -> Variant:
    """Pause, retire or resume: only rotation changes; pairs and votes are kept."""
    if rotation not in Variant.Rotation.values:
        raise VariantError(f"Unknown rotation {rotation!r}; choose one of {', '.join(Variant.Rotation.values)}.")
    rows = Variant.objects.filter(pk=variant.pk)
    if rotation != Variant.Rotation.RETIRED:
        _refuse_if_searched(variant.feature_set_id)
        # Conditional on the row, so a public search marking it at the same moment cannot slip in between.
        rows = rows.filter(searched_publicly_at__isnull=True)
        if variant.feature_set_id is not None:
            rows = rows.exclude(feature_set_id__in=_searched_features())
    if rows.update(rotation=rotation) != 1:
        _refuse_if_searched(variant.feature_set_id)
        raise VariantError(f"{variant.name} no longer exists.")
    _rotation_changed(variant.pk)
    variant.refresh_from_db()
    return variant


class VariantSearchedPublicly(Conflict):
    """Voters have searched with a model on these features: a model on them in the rotation would not be blind."""


def _searched_features():
    """Feature sets a model the public has searched with uses (a subquery; never NULL, which NOT IN would trip on)."""
    return Variant.objects.filter(searched_publicly_at__isnull=False, feature_set__isnull=False).values(
        "feature_set_id"
    )


def _refuse_if_searched(feature_set_id: int | None) -> None:
    """Public search with a model showed voters its neighbours, and any model on the same features finds nearly the
    same ones: none of them may be judged (in the rotation) again, nor a new one made on those features."""
    if feature_set_id is None:
        return
    searched = Variant.objects.filter(feature_set_id=feature_set_id, searched_publicly_at__isnull=False).first()
    if searched is not None:
        raise VariantSearchedPublicly(
            f"Voters have searched with {searched.name}, which uses these features: they would recognise the cards "
            "of any model on them, so those stay out of the rotation. Race different features (weights) instead."
        )


def variant_set_search_model(*, variant: Variant | None) -> Variant | None:
    """Make `variant` the model public search uses once it is retired (None: no choice, the best retired model
    is used); at most one is chosen. Its rotation is not changed here: retiring it is a separate, deliberate act."""
    if variant is not None and variant.metric == Metric.RANDOM:
        raise VariantError(f"{variant.name} is the random control: it cannot search.")
    with transaction.atomic():
        Variant.objects.filter(search_model=True).update(search_model=False)
        if variant is not None:
            Variant.objects.filter(pk=variant.pk).update(search_model=True)
    if variant is not None:
        variant.refresh_from_db()
    return variant


def variant_mark_searched_publicly(*, variant: Variant) -> bool:
    """Record that public search used `variant` (from then on no model on its features joins the rotation). False,
    and nothing written, if it or a model on its features is in the rotation (or paused): the search must not be
    answered."""
    judged = Variant.objects.exclude(rotation=Variant.Rotation.RETIRED).filter(feature_set__isnull=False)
    marked = (
        Variant.objects.filter(pk=variant.pk, rotation=Variant.Rotation.RETIRED)
        .exclude(feature_set_id__in=judged.values("feature_set_id"))
        .update(searched_publicly_at=Coalesce(F("searched_publicly_at"), Now()))
    )
    return marked == 1


def variant_delete(*, variant: Variant) -> None:
    """Delete a variant and its pairs, unless something refuses (votes on its cards: retire it instead)."""
    reasons = signals.deletion_blockers(variant)
    if reasons:
        raise VariantProtected(f"{variant.name} cannot be deleted: {'; '.join(reasons)}.")
    pk = variant.pk
    variant.delete()
    _rotation_changed(pk, reason="deleted")


class VariantProtected(Conflict):
    """Deleting the variant would lose something (its votes)."""


def _rotation_changed(variant_id: int, reason: str = "rotation") -> None:
    """Tell the layers above (voting drops its cached rotation): now, and again once the write commits, so a
    request that re-read the old rotation in between does not keep it."""
    signals.rotation_changed.send(sender=Variant, variant_id=variant_id, reason=reason)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(
            lambda: signals.rotation_changed.send(sender=Variant, variant_id=variant_id, reason=reason)
        )


# ---------------------------------------------------------------------------------------- uploads


def _check_new_names(name: str, metrics: list[str], search: dict | None = None) -> list[str]:
    name = (name or "").strip()
    if not name:
        raise UploadError("Give the model a name.")
    if len(name) > 100:
        raise UploadError("The name is longer than 100 characters.")
    metrics = list(dict.fromkeys(metrics))
    if not metrics:
        raise UploadError("Choose at least one metric.")
    wrong = [m for m in metrics if m not in Metric.values or m == Metric.RANDOM]
    if wrong:
        raise UploadError(f"Unknown metric {wrong[0]!r}; choose from l1, l2, hamming, cosine.")
    search = search or {"search": "auto", "n_trees": 50, "search_k": -1}
    for metric in metrics:
        try:
            check_search(metric=metric, **search)
        except VariantError as exc:
            raise UploadError(str(exc)) from None
    names = [with_search(f"{name} · {metric}", **search) for metric in metrics]
    taken = list(Variant.objects.filter(name__in=names).values_list("name", flat=True))
    if taken or Variant.objects.filter(name=name).exists():
        raise UploadError(f"The name {name!r} is already taken ({(taken or [name])[0]}); choose another.")
    return names


@contextlib.contextmanager
def _spooled(upload, suffix: str):
    """Copy an upload into a temporary file of the private storage (the filesystem of its final place).

    Yields (AtomicFile, sha256): set its `target` to keep it (it is renamed there when the block ends without
    an error); otherwise it is removed.
    """
    if upload.size > settings.VSEARCH_MAX_UPLOAD_BYTES:
        raise UploadError(
            f"{upload.name} is {upload.size:,} bytes, over the upload limit of {settings.VSEARCH_MAX_UPLOAD_BYTES:,}."
        )
    if upload.size == 0:
        raise UploadError(f"{upload.name} is empty.")
    # The spool keeps the upload's suffix: the weights loader picks the format by it.
    spool = AtomicFile(private_path("uploads"), name="upload", suffix=suffix)
    digest = hashlib.sha256()
    try:
        with spool.path.open("wb") as fh:
            for chunk in upload.chunks():
                digest.update(chunk)
                fh.write(chunk)
        yield spool, digest.hexdigest()
        if spool.target is not None:
            spool.commit()
    finally:
        spool.discard()


def _create_variants(
    names: list[str], metrics: list[str], feature_set: FeatureSet, description: str, search: dict | None
) -> list[Variant]:
    _refuse_if_searched(feature_set.pk)
    variants = [
        Variant.objects.create(
            name=name, description=description, feature_set=feature_set, metric=metric, **(search or {})
        )
        for name, metric in zip(names, metrics, strict=True)
    ]
    for variant in variants:
        dispatch.enqueue_build(variant.pk)
    return variants


def variant_upload(
    *,
    kind: str,
    name: str,
    metrics: list[str],
    file,
    description: str = "",
    architecture: str = "",
    layer: str = "",
    ids_file=None,
    search: str = "auto",
    n_trees: int = 50,
    search_k: int = -1,
) -> list[Variant]:
    """A staff upload, weights or embeddings: the one call behind the API and the staff page's form. `search`,
    `n_trees` and `search_k` are the new variants' search method (variant_create)."""
    method = {"search": search, "n_trees": n_trees, "search_k": search_k}
    if kind == "weights":
        return variants_from_weights(
            name=name,
            description=description,
            architecture=architecture,
            layer=layer,
            metrics=metrics,
            upload=file,
            search=method,
        )
    if kind == "embeddings":
        return variants_from_embeddings(
            name=name, description=description, metrics=metrics, upload=file, ids_upload=ids_file, search=method
        )
    raise UploadError(f"Unknown upload kind {kind!r}; choose weights or embeddings.")


def variants_from_weights(
    *,
    name: str,
    description: str = "",
    architecture: str,
    layer: str,
    metrics: list[str],
    upload,
    search: dict | None = None,
) -> list[Variant]:
    """One variant per metric from uploaded weights, sharing one feature set; built in the background.

    The file is checked (weights_only load, strict keys and shapes) before anything is stored.
    """
    names = _check_new_names(name, metrics, search)
    suffix = Path(upload.name).suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise UploadError(f"{upload.name}: weights must be a .pt/.pth state dict or .safetensors file.")
    with _spooled(upload, suffix) as (spool, sha):
        check_weights(spool.path, filename=upload.name, architecture=architecture, layer=layer)
        relative = f"uploads/weights/{sha}{suffix}"
        final = private_path(relative)
        placed = not final.exists()
        if placed:
            spool.target = final
    try:
        with transaction.atomic():
            feature_set, _ = FeatureSet.objects.get_or_create(featurizer=architecture, layer=layer, weights=relative)
            variants = _create_variants(names, list(dict.fromkeys(metrics)), feature_set, description, search)
    except BaseException:
        if placed:
            final.unlink(missing_ok=True)
        raise
    return variants


def variants_from_embeddings(
    *, name: str, description: str = "", metrics: list[str], upload, ids_upload=None, search: dict | None = None
) -> list[Variant]:
    """One variant per metric from embeddings made elsewhere; they are checked, then stored as features."""
    names = _check_new_names(name, metrics, search)
    suffix = Path(upload.name).suffix.lower()
    if suffix not in EMBEDDING_SUFFIXES:
        raise UploadError(f"{upload.name}: embeddings must be .npy (with an id list), .npz or .csv.")
    with contextlib.ExitStack() as stack:
        spool, sha = stack.enter_context(_spooled(upload, suffix))
        ids_path = None
        if ids_upload is not None:
            ids_path = stack.enter_context(_spooled(ids_upload, ".txt"))[0].path
        embeddings = read_embeddings(
            spool.path, filename=upload.name, ids_path=ids_path, ids_filename=getattr(ids_upload, "name", "")
        )
    folder = f"features/embeddings/{sha[:16]}"
    written = []
    try:
        for relative, array in (
            (f"{folder}/ids.npy", embeddings.item_ids),
            (f"{folder}/uploaded.npy", embeddings.vectors),
        ):
            array_save(relative, array)
            written.append(relative)
        with transaction.atomic():
            feature_set, _ = FeatureSet.objects.update_or_create(
                featurizer="embeddings",
                layer="uploaded",
                weights=f"embeddings:{sha}",
                defaults={
                    "status": FeatureSet.Status.READY,
                    "path": f"{folder}/uploaded.npy",
                    "progress": 1.0,
                    "dim": embeddings.vectors.shape[1],
                    "n_items": len(embeddings.item_ids),
                    "error": "",
                },
            )
            variants = _create_variants(names, list(dict.fromkeys(metrics)), feature_set, description, search)
    except BaseException:
        if not FeatureSet.objects.filter(weights=f"embeddings:{sha}").exists():
            for relative in written:
                private_path(relative).unlink(missing_ok=True)
        raise
    return variants
