from django.core.management.base import BaseCommand

from voting.services import voters_review


class Command(BaseCommand):
    help = "Review every voter with new votes: gold answers, anomaly tests, speed and streaks; exclude and flag."

    def handle(self, *args, **options):
        report = voters_review()
        self.stdout.write(
            f"{report.reviewed} voters reviewed: {report.excluded} newly excluded, {report.flagged} flagged."
        )
