"""Search the catalog with a model: by photo, through the model's own featurizer and preprocessing, or by a catalog
item, among the same neighbours its pairs came from.

A model's engine (its feature rows, its searcher as the build chose it, its featurizer) is loaded once per process
and reused until the model's files change. Nothing a query sends is stored. Who may search with which model is
the voting layer's business (voting/search.py); errors here are domain errors, turned into HTTP by the API.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from PIL import Image, ImageOps

from matching import featurizers, index, pipeline
from matching.catalog import ALLOWED_FORMATS, BadImage, open_image
from matching.features import features_current, features_rows
from matching.models import FeatureSet, Item, MatchPair, Metric, Variant
from matching.storage import media_path, private_path
from vsearch_site.errors import Conflict, InvalidInput, NotFound

MAX_K = 50
ENGINES = 4  # engines kept per process: each holds its features (10k x 4096 float32 is 160 MB), oldest dropped
# Phone cameras write multi-picture JPEGs (a depth map or a preview inside): Pillow calls them MPO.
QUERY_FORMATS = {**ALLOWED_FORMATS, "MPO": "jpg"}
# A JPEG is decoded at the smallest 1/2^n scale that keeps twice the side the featurizer's transform resizes to
# (256 px for the torchvision networks: a 12 Mpx phone photo decodes at 1/4 scale, 3x faster than whole, and the
# antialiased resize that follows sees more pixels than it keeps). Unknown transforms: this many px.
DRAFT_FALLBACK = 1024


class BadQuery(InvalidInput):
    """The query cannot be searched as sent; the message says why."""


@dataclass(frozen=True)
class Hit:
    item_id: int
    distance: float


@dataclass(frozen=True)
class Engine:
    variant_id: int
    ids: np.ndarray
    position: dict[int, int]
    searcher: index.Searcher
    featurizer: str
    weights: str
    layer: str

    @property
    def by_photo(self) -> bool:
        return self.featurizer in featurizers.REGISTRY


def refusal(variant: Variant) -> str | None:
    """Why `variant` cannot search at all, or None."""
    if variant.metric == Metric.RANDOM:
        return f"{variant.name} is the random control: it has no idea of similar, so it cannot search."
    if variant.status != Variant.Status.READY:
        return f"{variant.name} is not built yet ({variant.status}): search with a ready model."
    fs = variant.feature_set
    if fs is None or fs.status != FeatureSet.Status.READY or not features_current(fs):
        return f"The features of {variant.name} are being rebuilt: try again once its build is done."
    return None


def photo_refusal(variant: Variant) -> str | None:
    """Why `variant` cannot search by photo (it may still search by item), or None."""
    if variant.feature_set and variant.feature_set.featurizer not in featurizers.REGISTRY:
        return f"{variant.name} was built from uploaded embeddings: it has no featurizer for photos, search by item."
    return None


def search_by_photo(*, variant: Variant, data: bytes, k: int) -> list[Hit]:
    """The k catalog items nearest to a photo under `variant` (a byte-identical catalog image comes first)."""
    _check(variant, k)
    reason = photo_refusal(variant)
    if reason:
        raise BadQuery(reason)
    engine = engine_for(variant)
    side = draft_side(featurizers.get(engine.featurizer, engine.weights))
    try:
        image = open_image(
            data,
            max_bytes=settings.VSEARCH_SEARCH_MAX_BYTES,
            max_pixels=settings.VSEARCH_MAX_IMAGE_PIXELS,
            formats=QUERY_FORMATS,
            draft=(side, side),
        )
    except BadImage as exc:
        raise BadQuery(f"The photo cannot be searched: {exc}.") from None
    # Upright as the camera saw it (phones store the rotation in EXIF); catalog product shots carry none.
    image = ImageOps.exif_transpose(image)
    top, dist = engine.searcher.query(_embed(engine, image), k)
    return _hits(engine, top, dist)


def search_by_item(*, variant: Variant, item_id: int, k: int) -> list[Hit]:
    """The k nearest other catalog items to a catalog item (never itself nor a byte-identical copy): its stored
    pairs, what voters are shown, when the build stored k of them; else the model's searcher."""
    _check(variant, k)
    item = Item.objects.filter(pk=item_id).first()
    if item is None:
        raise NotFound(f"There is no catalog item #{item_id}.")
    if k <= variant.k:
        stored = list(
            MatchPair.objects.filter(variant=variant, query_item_id=item.pk)
            .order_by("rank")
            .values_list("pair__match_item_id", "distance")[:k]
        )
        if len(stored) == k:
            return [Hit(int(match), float(distance)) for match, distance in stored]
    engine = engine_for(variant)
    position = engine.position.get(item.pk)
    if position is not None:
        top, dist = engine.searcher.neighbours(np.array([position]), k)
        return _hits(engine, top[0], dist[0])
    # Imported after the model was built: search with its image, as a photo (its copies are left out).
    if not engine.by_photo:
        raise NotFound(f"Item #{item.pk} came after {variant.name} was built: rebuild the model to search by it.")
    try:
        with Image.open(media_path(item.image)) as image:
            image = image.convert("RGB")
            if item.bbox:
                image = image.crop(tuple(item.bbox))
    except OSError:
        raise Conflict(f"The image of item #{item.pk} is missing from the media root: import it again.") from None
    top, dist = engine.searcher.query(_embed(engine, image), k + 1)
    hits = [h for h in _hits(engine, top, dist) if h.item_id != item.pk]
    return hits[:k]


def draft_side(featurizer) -> int:
    """Twice the largest side the featurizer's transform resizes or crops to (torchvision's Resize, CenterCrop and
    ImageNet presets say it), or DRAFT_FALLBACK."""
    steps = getattr(featurizer.transform, "transforms", [featurizer.transform])
    sides = []
    for step in steps:
        for name in ("resize_size", "size", "crop_size"):
            value = getattr(step, name, None)
            values = value if isinstance(value, list | tuple) else [value]
            sides += [v for v in values if isinstance(v, int)]
    return 2 * max(sides) if sides else DRAFT_FALLBACK


def _check(variant: Variant, k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise BadQuery(f"k must be between 1 and {MAX_K}.")
    reason = refusal(variant)
    if reason:
        raise Conflict(reason)


def _embed(engine: Engine, image: Image.Image) -> np.ndarray:
    """The same featurizer, weights, transform and layer as the build (matching.features.ItemImages)."""
    featurizer = featurizers.get(engine.featurizer, engine.weights)
    vector = featurizer.embed([image.convert("RGB")])[engine.layer][0]
    if not np.isfinite(vector).all():
        raise BadQuery("The model produced NaN or Inf features for this photo.")
    return vector


def _hits(engine: Engine, top: np.ndarray, dist: np.ndarray) -> list[Hit]:
    return [Hit(int(engine.ids[p]), float(d)) for p, d in zip(top, dist, strict=True) if p >= 0]


# ---------------------------------------------------------------------------------------- engines, once per process

_engines: collections.OrderedDict[tuple, Engine] = collections.OrderedDict()
_lock = threading.Lock()


def _stamp(relative: str) -> int:
    path = private_path(relative) if relative else None
    return path.stat().st_mtime_ns if path is not None and path.exists() else 0


def engine_for(variant: Variant) -> Engine:
    """The variant's engine, loaded once per process and file version (a rebuild writes new files: new engine)."""
    fs = variant.feature_set
    key = (
        variant.pk,
        variant.metric,
        variant.search_k_used,
        fs.path,
        _stamp(fs.path),
        variant.index_path,
        _stamp(variant.index_path),
    )
    with _lock:
        engine = _engines.get(key)
        if engine is not None:
            _engines.move_to_end(key)
            return engine
        engine = _load(variant)
        for old in [k for k in _engines if k[0] == variant.pk]:
            del _engines[old]  # an older version of this model's files
        _engines[key] = engine
        while len(_engines) > ENGINES:
            _engines.popitem(last=False)
        return engine


def _load(variant: Variant) -> Engine:
    fs = variant.feature_set
    ids, vectors, rows = features_rows(fs)  # rows: where the index (built over every file row) has each item
    try:
        groups = pipeline.copy_groups(ids)
    except pipeline.BuildError as exc:
        raise Conflict(f"{variant.name} cannot search: {exc}") from None
    try:
        searcher, _ = pipeline.variant_searcher(variant, ids, vectors, groups, rows)
    except FileNotFoundError:
        raise Conflict(f"The index of {variant.name} is missing from the build storage: rebuild the model.") from None
    return Engine(
        variant_id=variant.pk,
        ids=np.asarray(ids, dtype=np.int64),
        position={int(i): p for p, i in enumerate(ids)},
        searcher=searcher,
        featurizer=fs.featurizer,
        weights=fs.weights,
        layer=fs.layer,
    )


def engines_forget() -> None:
    """Drop every loaded engine (tests; a process that wants its memory back)."""
    with _lock:
        _engines.clear()
