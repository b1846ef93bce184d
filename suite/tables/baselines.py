"""Table `baselines`: every baseline model on its datasets with parameters, size, latency and accuracy."""
from __future__ import annotations

from baselines import model_label
from suite.data import DATASETS
from suite.profiles import dataset_family
from suite.reference import Reported, reported
from suite.spec import CellSpec
from suite.tables import Table, TableOptions, TableRow, register_table

DATASET_LABELS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
# (dataset, model) rows per profile; `cpu` keeps what a 2-core machine trains in about 70 minutes
# (AlexNet ~40 min at ~130 img/s, VGG8 ~17 min, ResNet20 ~12 min, both LeNet-5 rows ~1 min).
ROWS = {
    "smoke": [("mnist", "lenet5"), ("fashion_mnist", "lenet5"), ("cifar10", "resnet20"), ("cifar10", "vgg8")],
    "cpu": [("mnist", "lenet5"), ("fashion_mnist", "lenet5"), ("cifar10", "alexnet"), ("cifar10", "vgg8"),
            ("cifar10", "resnet20")],
    "paper": [("mnist", "lenet5"), ("fashion_mnist", "lenet5")]
    + [("cifar10", m) for m in ("alexnet", "vgg8", "vgg16", "resnet18", "resnet20", "resnet32", "resnet50",
                                "resnet110", "mobilenetv2")]
    + [("cifar100", m) for m in ("vgg8", "vgg16", "resnet18", "resnet20", "resnet32", "resnet110", "resnet50")],
}

# Where the papers report a baseline's top-1: (paper, table, row, column); the first is the one compared.
REPORTED_TOP1 = {
    ("mnist", "lenet5"): [("compression", "TII", "baseline", "top1"), ("caenet", "TII", "lenet", "top1")],
    ("cifar10", "alexnet"): [("caenet", "TI", "alexnet", "top1")],
    ("cifar10", "vgg8"): [("encodenet", "T2", "vgg8", "cifar10_baseline")],
    ("cifar10", "vgg16"): [("encodenet", "T2", "vgg16", "cifar10_baseline"), ("caenet", "TI", "vgg16", "top1")],
    ("cifar10", "resnet18"): [("encodenet", "T2", "resnet18", "cifar10_baseline"), ("caenet", "TI", "resnet18", "top1")],
    ("cifar10", "resnet20"): [("encodenet", "T2", "resnet20", "cifar10_baseline")],
    ("cifar10", "resnet32"): [("caenet", "TI", "resnet32", "top1")],
    ("cifar10", "resnet50"): [("caenet", "TI", "resnet50", "top1")],
    ("cifar10", "mobilenetv2"): [("caenet", "TI", "mobilenetv2", "top1")],
    ("cifar100", "vgg8"): [("encodenet", "T2", "vgg8", "cifar100_baseline"), ("encodenet", "T4", "student", "vgg16_vgg8")],
    ("cifar100", "vgg16"): [("encodenet", "T2", "vgg16", "cifar100_baseline"), ("encodenet", "T4", "teacher", "vgg16_vgg8")],
    ("cifar100", "resnet18"): [("encodenet", "T2", "resnet18", "cifar100_baseline")],
    ("cifar100", "resnet20"): [("encodenet", "T2", "resnet20", "cifar100_baseline")],
    ("cifar100", "resnet32"): [("encodenet", "T4", "student", "resnet110_resnet32")],
    ("cifar100", "resnet110"): [("encodenet", "T4", "teacher", "resnet110_resnet32")],
    ("cifar100", "resnet50"): [("encodenet", "T5", "resnet50", "top1")],
}


def reported_top1(dataset: str, model: str) -> list[Reported]:
    found = (reported(*ref) for ref in REPORTED_TOP1.get((dataset, model), []))
    return [r for r in found if r is not None]


def on_dataset(pairs: list[tuple[str, str]], dataset: str | None) -> list[tuple[str, str]]:
    """(dataset, model) pairs moved to `dataset`: its models from the rows of the same kind of data."""
    if not dataset:
        return pairs
    family = dataset_family(DATASETS.get(dataset).in_chans)
    models = [m for d, m in pairs if dataset_family(DATASETS.get(d).in_chans) == family]
    return [(dataset, m) for m in dict.fromkeys(models)]


def label(name: str, labels: dict[str, str]) -> str:
    return labels.get(name, name)


@register_table
class BaselinesTable(Table):
    name = "baselines"
    title = "Baseline models"
    description = "Each baseline model trained with cross-entropy by the profile's recipe (method `baseline`)."

    def rows(self, opts: TableOptions) -> list[TableRow]:
        pairs = on_dataset(ROWS.get(opts.profile, ROWS["cpu"]), opts.dataset)
        return [TableRow({"Dataset": label(d, DATASET_LABELS), "Model": model_label(m)},
                         CellSpec.make("baseline", m, d, opts.profile), reported_top1(d, m))
                for d, m in pairs]

    def notes(self, opts: TableOptions) -> list[str]:
        return ["Reported figures come from papers with their own schedules (EncodeNet: 300 epochs; CAE-Net and the "
                "compression paper: not all stated); compare them with `paper`-profile runs, not `cpu` ones.",
                "AlexNet is the suite's CIFAR variant (7.5 M parameters); CAE-Net reports 9.3 M for its unprinted variant."]
