"""Celery adapters of voting: the periodic voter review (Celery beat, CELERY_BEAT_SCHEDULE)."""

from celery import shared_task

from voting.services import voters_review


@shared_task(name="voting.review_voters", ignore_result=True)
def review_voters() -> int:
    return voters_review().excluded
