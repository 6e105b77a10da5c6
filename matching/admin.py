from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from matching.models import FeatureSet, Item, Variant
from matching.services import ItemProtected, item_delete, variant_rebuild, variant_set_rotation
from matching.signals import deletion_blockers


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


def _rotate(request, queryset, rotation: str) -> None:
    for variant in queryset:
        variant_set_rotation(variant=variant, rotation=rotation)
    messages.success(request, f"{queryset.count()} variant(s): {rotation}.")


@admin.register(Variant)
class VariantAdmin(admin.ModelAdmin):
    list_display = ["name", "metric", "status", "stage", "progress_pct", "rotation", "p_at_1", "recall_at_k", "error"]
    list_filter = ["status", "rotation", "metric"]
    actions = [pause, retire, resume, rebuild]
    readonly_fields = [
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
    ]

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
