import time

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from matching.defaults import FINETUNED_WEIGHTS, default_variants
from matching.dispatch import build_signature
from matching.models import Item, Variant
from matching.services import feature_set_get_or_create, variant_create, variant_display_name
from matching.storage import private_path


class Command(BaseCommand):
    help = (
        "Create the default variants that are missing and build every variant not ready yet, through the "
        "Celery tasks: in this process (default) or on a worker (--worker). Finished builds are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--worker", action="store_true", help="send to Celery workers and wait")
        parser.add_argument("--no-train", action="store_true", help="skip the fine-tuned variants if untrained")
        parser.add_argument("--k", type=int, default=5, help="neighbours stored per query for new variants")

    def handle(self, *args, worker: bool, no_train: bool, k: int, **options):
        if not Item.objects.exists():
            raise CommandError("The catalog is empty: run make_demo_catalog or import_catalog first.")
        specs = default_variants()
        if not private_path(FINETUNED_WEIGHTS).exists():
            if no_train:
                specs = [s for s in specs if s.get("featurizer") != "finetuned"]
            else:
                self.stdout.write("Training the fine-tuned network first (train_featurizer)...")
                call_command("train_featurizer", out=FINETUNED_WEIGHTS, stdout=self.stdout, stderr=self.stderr)
        for spec in specs:
            fs = None
            if spec["metric"] != "random":
                fs = feature_set_get_or_create(
                    featurizer=spec["featurizer"], layer=spec["layer"], weights=spec.get("weights", "none")
                )
            if not Variant.objects.filter(name=variant_display_name(fs, spec["metric"])).exists():
                variant_create(**spec, k=k, build=False)

        todo = list(Variant.objects.exclude(status=Variant.Status.READY).order_by("id"))
        for variant in todo:
            if variant.status == Variant.Status.FAILED:
                Variant.objects.filter(pk=variant.pk).update(status=Variant.Status.QUEUED, error="", claimed_by="")
            started = time.perf_counter()
            self.stdout.write(f"building {variant.name} ...")
            if worker:
                build_signature(variant.pk).apply_async()
                self._wait(variant)
            else:
                build_signature(variant.pk).apply()
            variant.refresh_from_db()
            took = time.perf_counter() - started
            if variant.status == Variant.Status.READY:
                self.stdout.write(f"  ready in {took:.1f} s  (P@1 {variant.p_at_1:.1%})")
            else:
                self.stderr.write(f"  {variant.status}: {variant.error}")
        ready = Variant.objects.filter(status=Variant.Status.READY).count()
        self.stdout.write(f"{ready} of {Variant.objects.count()} variants ready.")
        # Each build lays out its features; maps missing from before (an older install) are made here.
        call_command("build_maps", worker=worker, stdout=self.stdout, stderr=self.stderr)

    def _wait(self, variant: Variant) -> None:
        last = None
        while True:
            variant.refresh_from_db()
            state = (variant.status, variant.stage, round(variant.progress, 2))
            if state != last:
                self.stdout.write(f"  {variant.stage} {variant.progress:.0%}")
                last = state
            if variant.status in (Variant.Status.READY, Variant.Status.FAILED):
                return
            time.sleep(1.0)
