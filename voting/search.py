"""Search by photo or by item, and who may search with which model: the blindness rule for search.

A voter who could search with a model in the rotation could learn which model made a card: search the card's
query item (or a photo of it) with model M and compare with the card's match. So:
- staff may search with any model that can search; by default the live leaderboard's leader;
- everyone else only with a model that has left the rotation for good (retired), and only while no model on the
  same features is judged (they find nearly the same neighbours): by default the model staff chose as the search
  model, else the retired model ranked highest on the public leaderboard. With none, search is for staff only.
- once the public has searched with a model, no model on its features joins the rotation again, and no new one is
  made on them (matching.services refuses both): voters would recognise their cards.

The engine (featurizer, features, index, once per process) is matching.search; this module chooses the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from matching import search as engine
from matching.models import Item, Variant
from matching.services import variant_mark_searched_publicly
from voting import design, leaderboard, sampling
from vsearch_site.errors import Forbidden, InvalidInput, NotFound, Unavailable

NO_PUBLIC_MODEL = (
    "Search opens to everyone once a model has left the rotation for good: searching with a model voters are "
    "judging would tell them which model made a card."
)
STAFF_ONLY = "Only staff can search with a model that is still in the rotation (or paused): it would unblind voters."
SHARED_FEATURES = (
    "Only staff can search with this model for now: a model on the same features is still in the rotation (or "
    "paused), and it finds nearly the same neighbours."
)


@dataclass(frozen=True)
class SearchModel:
    variant: Variant
    photo: bool  # it has a featurizer (uploaded embeddings search by item only)


def _searchable(variants) -> list[SearchModel]:
    return [SearchModel(v, engine.photo_refusal(v) is None) for v in variants if engine.refusal(v) is None]


def _ready():
    return Variant.objects.filter(status=Variant.Status.READY).exclude(metric="random").select_related("feature_set")


def _public():
    """Retired models none of whose feature-mates are judged: a model in the rotation on the same features finds
    nearly the same neighbours, so searching with its retired sibling would unblind its cards just the same."""
    judged = Variant.objects.exclude(rotation=Variant.Rotation.RETIRED).filter(feature_set__isnull=False)
    retired = _ready().filter(rotation=Variant.Rotation.RETIRED)
    return retired.exclude(feature_set_id__in=judged.values("feature_set_id"))


def search_models(*, staff: bool) -> list[SearchModel]:
    """The models this user may search with, the default first."""
    if staff:
        rotation = tuple(v.variant_id for v in sampling.rotation())
        current = design.current(rotation)
        rows = leaderboard.board(totals=current.tallies, active=set(rotation), best=current.p_best).rows
        variants = _ready()
    else:
        rows = leaderboard.public_snapshot().rows
        variants = _public()
    order = {row.variant_id: rank for rank, row in enumerate(rows)}
    chosen_first = not staff  # staff's own default is the leader; the public's is staff's choice, once retired

    def key(v: Variant):
        return (not (chosen_first and v.search_model), order.get(v.pk, len(order)), v.pk)

    return _searchable(sorted(variants, key=key))


def search_model_for(*, staff: bool, requested: int | None) -> Variant:
    """The model to search with: the one asked for, if this user may use it, else the default."""
    if requested is not None:
        variant = Variant.objects.select_related("feature_set").filter(pk=requested).first()
        if variant is None:
            raise NotFound(f"There is no model #{requested}.")
        if not staff and variant.rotation != Variant.Rotation.RETIRED:
            raise Forbidden(STAFF_ONLY)
        if not staff and not _public().filter(pk=variant.pk).exists():
            raise Forbidden(SHARED_FEATURES)
        return variant
    models = search_models(staff=staff)
    if not models:
        if staff:
            raise Unavailable("No model can search yet: build one first.", retry_after=60)
        raise Unavailable(NO_PUBLIC_MODEL, retry_after=600)
    return models[0].variant


@dataclass(frozen=True)
class Result:
    rank: int
    item_id: int
    category: str
    image: str
    distance: float


@dataclass(frozen=True)
class Query:
    item_id: int
    category: str
    image: str


@dataclass(frozen=True)
class Found:
    variant: Variant
    query: Query | None  # the catalog item searched by, if any (a photo is not echoed back)
    results: list[Result]


def search_run(
    *, staff: bool, requested: int | None, k: int, photo: bytes | None = None, item_id: int | None = None
) -> Found:
    """Search by photo or by item with the model this user may use; nothing of the query is stored."""
    if (photo is None) == (item_id is None):
        raise InvalidInput("Send either an image or an item id (not both).")
    variant = search_model_for(staff=staff, requested=requested)
    if photo is not None:
        hits = engine.search_by_photo(variant=variant, data=photo, k=k)
    else:
        hits = engine.search_by_item(variant=variant, item_id=item_id, k=k)
    # Marked only once a search succeeded (a refused photo writes nothing), and conditionally: a model brought
    # back into the rotation since it was chosen gives no answer.
    if not staff and not variant_mark_searched_publicly(variant=variant):
        raise Forbidden(STAFF_ONLY)
    items = Item.objects.in_bulk([h.item_id for h in hits] + ([item_id] if item_id else []))
    results = [
        Result(rank, h.item_id, items[h.item_id].category, items[h.item_id].image_url, h.distance)
        for rank, h in enumerate((h for h in hits if h.item_id in items), start=1)
    ]
    query = None
    if item_id in items:
        query = Query(item_id, items[item_id].category, items[item_id].image_url)
    return Found(variant, query, results)
