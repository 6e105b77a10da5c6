from django.core.management.base import BaseCommand

from matching import pipeline
from matching.dispatch import LAYOUT_TASK
from matching.models import FeatureSet, Layout


class Command(BaseCommand):
    help = (
        "Lay out every ready feature set that has no current map (PCA, then t-SNE) and make the thumbnails the "
        "staff map draws: in this process (default) or on a Celery worker (--worker). Current maps are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--worker", action="store_true", help="send to Celery workers (does not wait)")

    def handle(self, *args, worker: bool, **options):
        for fs in FeatureSet.objects.filter(status=FeatureSet.Status.READY).order_by("id"):
            layout = Layout.objects.filter(feature_set=fs).select_related("feature_set").first()
            if layout is not None and pipeline.layout_current(layout):
                continue
            if worker:
                from celery import signature

                signature(LAYOUT_TASK, args=(fs.pk,), immutable=True).apply_async()
                self.stdout.write(f"{fs}: sent to a worker")
                continue
            self.stdout.write(f"{fs}: laying out {fs.n_items} items ...")
            layout = pipeline.feature_set_layout(feature_set_id=fs.pk)
            if layout is not None and layout.status == Layout.Status.READY:
                self.stdout.write(f"  ready in {layout.seconds:.1f} s")
            else:
                self.stderr.write(f"  {layout.status if layout else 'not done'}: {layout.error if layout else ''}")
