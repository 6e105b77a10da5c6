"""Catalog items, feature sets, model variants and the match pairs they produce."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from matching.featurizers.base import IMAGENET, UNTRAINED


class CatalogItems(models.Manager):
    """The catalog: what featurizers, matches, training and uploads see (gold copies are not part of it)."""

    def get_queryset(self):
        return super().get_queryset().filter(role=Item.Role.CATALOG)


class Item(models.Model):
    """One catalog image. The file is stored once per content hash; the crop (bbox) is part of identity.

    A gold copy (an altered copy of a catalog item, for known-dope gold cards) is stored and served exactly like
    a catalog image, but is not in the catalog: `Item.objects` leaves it out, `Item.everything` has all.
    """

    class Role(models.TextChoices):
        CATALOG = "catalog"
        GOLD_COPY = "gold-copy"

    sha256 = models.CharField(max_length=64, db_index=True)
    image = models.CharField(max_length=255, help_text="Path under MEDIA_ROOT, named by content hash.")
    category = models.CharField(max_length=100, db_index=True)
    attributes = models.JSONField(default=dict, blank=True)
    bbox = models.JSONField(
        null=True, blank=True, help_text="[left, top, right, bottom] in pixels, applied before featurizing."
    )
    crop_key = models.CharField(max_length=64, default="", blank=True, editable=False)
    source = models.CharField(max_length=500, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.CATALOG, db_index=True)

    everything = models.Manager()
    objects = CatalogItems()

    class Meta:
        ordering = ["id"]
        default_manager_name = "objects"
        base_manager_name = "everything"  # a gold card's pair reaches its copy
        constraints = [models.UniqueConstraint(fields=["sha256", "crop_key"], name="item_unique_image_and_crop")]

    def __str__(self) -> str:
        return f"{self.category} #{self.pk}"

    @property
    def image_url(self) -> str:
        from matching.storage import media_url

        return media_url(self.image)


class BuildStatus(models.TextChoices):
    """Where a background build stands; shared by feature sets and variants."""

    QUEUED = "queued"
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"


class FeatureSet(models.Model):
    """Features of the catalog's items for one featurizer + layer + weights, shared by all metrics.

    Its files (`path` and the item ids beside it) say which items it covers; each featurizing run writes the next
    `revision`: the rows of the previous one still in the catalog, then the items it lacked (matching.featurizing).
    """

    Status = BuildStatus

    featurizer = models.CharField(max_length=50)
    layer = models.CharField(max_length=50)
    weights = models.CharField(max_length=300, help_text="imagenet, none, or a path to a weights file.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    dim = models.PositiveIntegerField(null=True, blank=True)
    n_items = models.PositiveIntegerField(null=True, blank=True)
    path = models.CharField(
        max_length=255, blank=True, help_text=".npy in the private build storage; item ids beside it."
    )
    seconds = models.FloatField(null=True, blank=True)
    revision = models.PositiveIntegerField(
        default=0, help_text="The version of the files at `path`; each featurizing run writes the next one."
    )
    generation = models.PositiveIntegerField(
        default=0,
        help_text="Bumped when every item is featurized anew (new weights): pairs of an older generation are void.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["featurizer", "layer", "weights"], name="featureset_unique_source"),
        ]

    def __str__(self) -> str:
        return f"{self.featurizer}/{self.layer} · {self.weights_label}"

    @property
    def weights_label(self) -> str:
        if self.weights == UNTRAINED:
            return "untrained"
        if self.weights == IMAGENET:
            return "imagenet"
        if self.weights.startswith("embeddings:"):
            return "uploaded embeddings"
        from pathlib import PurePath

        return PurePath(self.weights).stem


class Metric(models.TextChoices):
    L1 = "l1", "L1"
    L2 = "l2", "L2"
    HAMMING = "hamming", "Hamming"
    COSINE = "cosine", "cosine"
    RANDOM = "random", "random pairs"


def search_label(search: str, n_trees: int, search_k: int) -> str:
    """A forced search method as the display name spells it: `exact`, `annoy 10 trees`, `annoy 10 trees · search_k
    400` (search_k -1: calibrated per build)."""
    if search == "exact":
        return "exact"
    label = f"annoy {n_trees} tree{'s' if n_trees != 1 else ''}"
    return label if search_k == -1 else f"{label} · search_k {search_k}"


class Variant(models.Model):
    """A featurizer x metric x search method x index parameters: the thing voters judge, blind."""

    Status = BuildStatus

    class Stage(models.TextChoices):
        QUEUED = "queued"
        FEATURIZING = "featurizing"
        INDEXING = "indexing"
        PAIRS = "pairs"
        EVALUATING = "evaluating"
        READY = "ready"

    class Rotation(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"
        RETIRED = "retired"

    class Search(models.TextChoices):
        AUTO = "auto", "auto (exact up to the size limit, else Annoy)"
        EXACT = "exact", "exact, at any size"
        ANNOY = "annoy", "Annoy, at any size"

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True, help_text="Shown on the leaderboard, never to voters.")
    feature_set = models.ForeignKey(
        FeatureSet, null=True, blank=True, on_delete=models.PROTECT, related_name="variants"
    )
    metric = models.CharField(max_length=10, choices=Metric.choices)
    # 50 trees: recall@10 >= 0.98 at 10k items for l1, l2 and cosine at Annoy's default budget, where 20 trees
    # gave 0.89-0.92; Hamming needs a bigger search_k, which search_k=-1 calibrates (docs/BENCHMARKS.md).
    n_trees = models.PositiveIntegerField(default=50)
    search_k = models.IntegerField(
        default=-1, help_text="-1: chosen per build, the smallest doubling of n_trees * (k+1) with recall@k >= 0.95."
    )
    search_k_used = models.IntegerField(
        null=True, blank=True, help_text="The search_k Annoy was queried with (calibrated when search_k is -1)."
    )
    k = models.PositiveIntegerField(default=5)
    sample_size = models.PositiveIntegerField(null=True, blank=True, help_text="Queries per build; empty: every item.")
    seed = models.PositiveIntegerField(default=0)

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    stage = models.CharField(max_length=12, choices=Stage.choices, default=Stage.QUEUED)
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    rotation = models.CharField(max_length=10, choices=Rotation.choices, default=Rotation.ACTIVE, db_index=True)
    dispatch_pending = models.BooleanField(default=False, help_text="The broker was down when the build was sent.")
    claimed_by = models.CharField(
        max_length=100, blank=True, default="", help_text="host:pid:nonce of the process running the current step."
    )
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life of the claiming process.")
    index_path = models.CharField(max_length=255, blank=True)
    search = models.CharField(
        max_length=5,
        choices=Search.choices,
        default=Search.AUTO,
        help_text="How its pairs are found: part of the model (staff compare exact and approximate search, blind).",
    )
    search_model = models.BooleanField(
        default=False,
        help_text="Staff's choice for public search by photo; the public may use it only once it is retired.",
    )
    searched_publicly_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When public search first used it: from then on it may not return to the rotation (voters would "
        "recognise its cards from their searches).",
    )
    pairs_search = models.CharField(
        max_length=5, blank=True, help_text="How the pairs were found: exact (small catalogs) or annoy."
    )
    features_generation = models.PositiveIntegerField(
        default=0, help_text="The generation of the features its index and pairs come from."
    )

    p_at_1 = models.FloatField(null=True, blank=True)
    p_at_k = models.FloatField(null=True, blank=True)
    recall_at_k = models.FloatField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(metric="random") | Q(feature_set__isnull=False), name="variant_needs_features_unless_random"
            ),
            models.CheckConstraint(condition=Q(k__gte=1), name="variant_k_positive"),
            models.UniqueConstraint(
                fields=["search_model"], condition=Q(search_model=True), name="variant_one_search_model"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def build_seconds(self) -> float | None:
        if self.started_at and self.ready_at:
            return (self.ready_at - self.started_at).total_seconds()
        return None

    @property
    def search_label(self) -> str:
        """How its pairs are found, for staff: `exact`, `annoy 10 trees · search_k 400`, `auto: exact`."""
        if self.metric == Metric.RANDOM:
            return "random pairs"
        if self.search == self.Search.AUTO:
            return f"auto: {self.pairs_search}" if self.pairs_search else "auto"
        return search_label(self.search, self.n_trees, self.search_k)

    @property
    def in_rotation(self) -> bool:
        return self.status == self.Status.READY and self.rotation == self.Rotation.ACTIVE


class Layout(models.Model):
    """A feature set's 2-D map (PCA, then t-SNE), built on the workers after featurizing; the file holds the item
    ids and their coordinates, beside the features in the private build storage."""

    Status = BuildStatus

    feature_set = models.OneToOneField(FeatureSet, on_delete=models.CASCADE, related_name="layout")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    path = models.CharField(max_length=255, blank=True, help_text=".npz (ids, xy) in the private build storage.")
    n_items = models.PositiveIntegerField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="PCA and t-SNE, without the thumbnails.")
    claimed_by = models.CharField(max_length=100, blank=True, default="")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"map of {self.feature_set}"


class FeatureRun(models.Model):
    """Featurizing the items a featurizer's files lack (every catalog item the first time, else those imported since),
    as chunks that workers claim one by one, then one merge into the next revision. One run at a time per featurizer
    and weights: it belongs to the lead (lowest id) feature set of that source, and fills every layer."""

    feature_set = models.OneToOneField(FeatureSet, on_delete=models.CASCADE, related_name="run")
    base_revision = models.PositiveIntegerField(
        null=True, blank=True, help_text="The revision the chunks are appended to; empty: every item from scratch."
    )
    claimed_by = models.CharField(max_length=100, blank=True, default="", help_text="host:pid:nonce of the merge.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"featurizing {self.feature_set} (run {self.pk})"


class FeatureChunk(models.Model):
    """Up to VSEARCH_FEATURIZE_CHUNK items of a run, claimed by one process (conditional UPDATE), one file."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"

    run = models.ForeignKey(FeatureRun, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    item_ids = models.JSONField(help_text="The items to embed, as planned (ones deleted since are skipped).")
    size = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    done = models.PositiveIntegerField(default=0, help_text="Items embedded so far: the run's progress is the sum.")
    claimed_by = models.CharField(max_length=100, blank=True, default="")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="featurechunk_unique_number")]

    def __str__(self) -> str:
        return f"chunk {self.number} of run {self.run_id}"


class Pair(models.Model):
    """A (query, match) card. Several variants may produce the same one; a vote on it counts for each."""

    query_item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    match_item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["query_item", "match_item"], name="pair_unique_query_match"),
            models.CheckConstraint(condition=~Q(query_item=models.F("match_item")), name="pair_not_self"),
        ]

    def __str__(self) -> str:
        return f"#{self.query_item_id} -> #{self.match_item_id}"


class MatchPair(models.Model):
    """Rank `rank` neighbour of a query under one variant. `seq` numbers a variant's rows 0..n-1 for O(1) sampling."""

    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="pairs")
    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="match_pairs")
    query_item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    rank = models.PositiveSmallIntegerField()
    distance = models.FloatField()
    seq = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["variant", "query_item", "rank"], name="matchpair_unique_rank"),
            models.UniqueConstraint(fields=["variant", "pair"], name="matchpair_unique_pair"),
            models.UniqueConstraint(fields=["variant", "seq"], name="matchpair_unique_seq"),
        ]

    def __str__(self) -> str:
        return f"variant {self.variant_id}: #{self.query_item_id} rank {self.rank}"
