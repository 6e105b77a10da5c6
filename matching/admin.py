from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from matching.models import FeatureSet, Item, Layout, Variant
from matching.services import (
    ItemProtected,
    item_delete,
    variant_rebuild,
    variant_set_rotation,
    variant_set_search_model,
)
from matching.signals import deletion_blockers
from vsearch_site.errors import DomainError


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["id", "thumbnail", "category", "attributes", "width", "height", "source"]
    list_filter = ["category"]
    search_fields = ["category", "source", "sha256"]
    readonly_fields = ["thumbnail", "sha256", "image", "width", "height", "crop_key", "created_at"]
    list_per_page = 50

    def delete_model(self, request, obj: Item) -> None:
        """Through the service: ready models are told (they show as stale until refreshed)."""
        item_delete(item=obj)

    def delete_queryset(self, request, queryset) -> None:
        refused = []
        for item in queryset:
            try:
                item_delete(item=item)
            except ItemProtected as exc:
                refused.append(str(exc))
        for reason in refused:
            messages.error(request, reason)

    @admin.display(description="image")
    def thumbnail(self, item: Item):
        return format_html(
            '<img src="{}" alt="" style="height:64px;width:64px;object-fit:contain" loading="lazy">', item.image_url
        )


@admin.register(FeatureSet)
class FeatureSetAdmin(admin.ModelAdmin):
    list_display = ["__str__", "status", "dim", "n_items", "revision", "generation", "seconds", "error"]
    list_filter = ["status", "featurizer"]


@admin.register(Layout)
class LayoutAdmin(admin.ModelAdmin):
    list_display = ["__str__", "status", "n_items", "seconds", "ready_at", "error"]
    list_filter = ["status"]
    readonly_fields = ["feature_set", "status", "error", "path", "n_items", "seconds", "claimed_by", "heartbeat_at"]


@admin.action(description="Pause (leave the rotation, keep votes)")
def pause(modeladmin, request, queryset):
    _rotate(request, queryset, Variant.Rotation.PAUSED)


@admin.action(description="Retire (leave the rotation for good, keep votes)")
def retire(modeladmin, request, queryset):
    _rotate(request, queryset, Variant.Rotation.RETIRED)


@admin.action(description="Resume (back into the rotation)")
def resume(modeladmin, request, queryset):
    _rotate(request, queryset, Variant.Rotation.ACTIVE)


@admin.action(description="Build again (failed variants)")
def rebuild(modeladmin, request, queryset):
    for variant in queryset.exclude(status=Variant.Status.READY):
        variant_rebuild(variant=variant)
    messages.success(request, "Queued again.")


@admin.action(description="Make it public search's model (used once retired)")
def make_search_model(modeladmin, request, queryset):
    if queryset.count() != 1:
        messages.error(request, "Choose exactly one variant as the search model.")
        return
    try:
        variant = variant_set_search_model(variant=queryset.get())
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{variant.name} is the search model (the public can use it once it is retired).")


def _rotate(request, queryset, rotation: str) -> None:
    done = 0
    for variant in queryset:
        try:
            variant_set_rotation(variant=variant, rotation=rotation)
        except DomainError as exc:
            messages.error(request, str(exc))
        else:
            done += 1
    messages.success(request, f"{done} variant(s): {rotation}.")


@admin.register(Variant)
class VariantAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "metric",
        "status",
        "stage",
        "progress_pct",
        "rotation",
        "search_model",
        "p_at_1",
        "recall_at_k",
        "error",
    ]
    list_filter = ["status", "rotation", "metric"]
    actions = [pause, retire, resume, rebuild, make_search_model]
    readonly_fields = [
        "search",  # changed through the staff page or API, which rebuild the pairs (variant_set_search)
        "n_trees",
        "search_k",
        "status",
        "stage",
        "progress",
        "error",
        "index_path",
        "pairs_search",
        "search_k_used",
        "p_at_1",
        "p_at_k",
        "recall_at_k",
        "started_at",
        "ready_at",
        "searched_publicly_at",
    ]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        searched = Variant.objects.filter(searched_publicly_at__isnull=False)
        if obj is not None and obj.feature_set_id and searched.filter(feature_set_id=obj.feature_set_id).exists():
            fields.append("rotation")  # it stays retired: see matching.services.variant_set_rotation
        return fields

    def get_deleted_objects(self, objs, request):
        """A variant with votes is listed as protected: the admin then refuses to delete it, and says why."""
        deleted, counts, perms, protected = super().get_deleted_objects(objs, request)
        for variant in objs:
            protected += [f"{variant.name}: {reason} (retire it instead)" for reason in deletion_blockers(variant)]
        return deleted, counts, perms, protected

    def delete_queryset(self, request, queryset):
        blocked = [v for v in queryset if deletion_blockers(v)]
        if blocked:
            messages.error(
                request, f"Not deleted: {', '.join(v.name for v in blocked)} have votes; retire them instead."
            )
            return
        super().delete_queryset(request, queryset)

    @admin.display(description="progress")
    def progress_pct(self, variant: Variant) -> str:
        return f"{variant.progress:.0%}"

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "title": "Variants (upload new ones on the staff page)"}
        messages.info(
            request, format_html('Upload a new model on the <a href="{}">staff page</a>.', reverse("frontend:staff"))
        )
        return super().changelist_view(request, extra_context)
