"""Build steps are claimed with a conditional UPDATE: one process runs a step, a redelivered copy waits its turn."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

from django.utils import timezone

from matching import pipeline
from matching.claims import HOST
from matching.models import Variant
from matching.services import variant_create


def queued_histogram_variant() -> Variant:
    return variant_create(featurizer="colour-histogram", layer="hsv", metric="l2", k=3, build=False)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_redelivered_step_whose_owner_is_alive_does_nothing(demo_catalog):
    variant = queued_histogram_variant()
    with pipeline.claimed_stage(variant.pk, "featurizing") as owned:
        assert owned is not None
        claimed_by = Variant.objects.get(pk=variant.pk).claimed_by

        # The same step delivered again while this process still runs it: nothing to do.
        with pipeline.claimed_stage(variant.pk, "featurizing") as duplicate:
            assert duplicate is None
        pipeline.variant_featurize(variant_id=variant.pk)

        assert Variant.objects.get(pk=variant.pk).claimed_by == claimed_by
        assert not variant.feature_set.__class__.objects.get(pk=variant.feature_set_id).path  # nothing computed


def test_a_step_whose_owner_died_is_taken_over_and_finished(demo_catalog):
    variant = queued_histogram_variant()
    Variant.objects.filter(pk=variant.pk).update(
        status=Variant.Status.RUNNING,
        stage="featurizing",
        claimed_by=f"{HOST}:{dead_pid()}:deadbeef",
        heartbeat_at=timezone.now(),
    )

    built = pipeline.variant_build_inline(variant_id=variant.pk)

    assert built.status == Variant.Status.READY, built.error
    assert built.claimed_by == "" and built.pairs.count() == len(demo_catalog) * 3


def test_an_owner_on_another_host_is_trusted_until_its_lease_runs_out(demo_catalog, settings):
    settings.VSEARCH_BUILD_LEASE_SECONDS = 60
    variant = queued_histogram_variant()
    elsewhere = {"status": Variant.Status.RUNNING, "stage": "featurizing", "claimed_by": "other-host:12:abc"}

    Variant.objects.filter(pk=variant.pk).update(**elsewhere, heartbeat_at=timezone.now() - timedelta(seconds=30))
    pipeline.variant_featurize(variant_id=variant.pk)
    assert Variant.objects.get(pk=variant.pk).claimed_by == "other-host:12:abc"

    Variant.objects.filter(pk=variant.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=61))
    pipeline.variant_featurize(variant_id=variant.pk)
    taken = Variant.objects.get(pk=variant.pk)
    assert taken.claimed_by == "" and taken.feature_set.status == "ready"


def test_of_two_claims_read_from_the_same_row_only_one_changes_it(demo_catalog):
    variant = queued_histogram_variant()
    # Two deliveries of one step read the row before either writes...
    row = Variant.objects.filter(pk=variant.pk).values("status", "stage", "claimed_by", "heartbeat_at").first()

    first = pipeline._take(variant.pk, "featurizing", row)
    second = pipeline._take(variant.pk, "featurizing", row)

    # ...and the conditional UPDATE lets only the first one through.
    assert first is not None and second is None
    assert Variant.objects.get(pk=variant.pk).claimed_by == first[1]


def test_a_finished_step_delivered_again_after_the_next_one_started_is_a_no_op(demo_catalog):
    variant = queued_histogram_variant()
    pipeline.variant_featurize(variant_id=variant.pk)
    pipeline.variant_index(variant_id=variant.pk)
    Variant.objects.filter(pk=variant.pk).update(stage="pairs")  # the pairs step is under way

    with pipeline.claimed_stage(variant.pk, "featurizing") as late:
        assert late is None
    assert Variant.objects.get(pk=variant.pk).stage == "pairs"
