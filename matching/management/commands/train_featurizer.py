from django.core.management.base import BaseCommand, CommandError

from matching.featurizers import REGISTRY, WeightsError
from matching.pipeline import BuildError
from matching.training import train_featurizer


class Command(BaseCommand):
    help = (
        "Retrain a backbone on the catalog's categories (new dense feature layer + softmax head) and save "
        "weights that the 'finetuned' featurizer uses. Starts from ImageNet weights when they are available."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--out", default=REGISTRY["finetuned"].default_weights, help="path in the private build storage"
        )
        parser.add_argument("--backbone", default="resnet18", choices=["resnet18", "resnet50"])
        parser.add_argument("--input-size", type=int, default=64)
        parser.add_argument("--hidden-dim", type=int, default=256)
        parser.add_argument("--epochs", type=int, default=12)
        parser.add_argument("--pretrained", default="auto", choices=["auto", "imagenet", "none"])
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **o):
        def progress(epoch: int, epochs: int, loss: float, accuracy: float) -> None:
            self.stderr.write(f"epoch {epoch}/{epochs}  loss {loss:.3f}  held-out accuracy {accuracy:.1%}")

        try:
            report = train_featurizer(
                out=o["out"],
                backbone=o["backbone"],
                input_size=o["input_size"],
                hidden_dim=o["hidden_dim"],
                epochs=o["epochs"],
                pretrained=o["pretrained"],
                seed=o["seed"],
                progress=progress,
            )
        except (BuildError, WeightsError) as exc:
            raise CommandError(str(exc)) from None
        start = "ImageNet weights, frozen convolutional layers" if report.pretrained else "random init, whole network"
        self.stdout.write(
            f"Trained {o['backbone']} ({start}) on {report.train_items} items in {report.seconds:.0f} s: "
            f"held-out accuracy {report.held_out_accuracy:.1%} on {report.held_out_items} items "
            f"({len(report.classes)} categories). Saved {report.path}."
        )
