"""Training budgets. A profile resolves to a `Recipe` per (dataset, protocol); the recipe is part of
every cell's hash and every table's header, so a result always says how it was trained.

Protocols name a paper's schedule for the `paper` profile: "default" (EncodeNet Sec. 4.1 baselines),
"mdistiller" (the KD recipe), "compression" (the compression paper's Adam recipe), and
"mdistiller_teacher": how the teachers of "mdistiller" students are trained (once, seed 0, shared by
every student, seed and table; under `cpu` on the students' own training images, for longer, so a teacher is
a teacher: the shrunk student recipe left ResNet56 below ResNet20, and a teacher that saw more images than its
students would make a distiller's gain partly the images it never saw).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from suite.registry import Registry


@dataclass(frozen=True)
class Recipe:
    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "sgd"  # "sgd" (momentum, nesterov off) or "adam"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # "cosine", "multistep" or "constant"
    milestones: tuple[int, ...] = ()  # epochs, for "multistep"
    gamma: float = 0.1
    train_subset: int | None = None  # stratified subset of the training split; None = all
    test_subset: int | None = None  # None = the whole test split (anything else is stated in headers)
    eval_batch_size: int = 1000

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size <= 0 or self.lr <= 0:
            raise ValueError("batch_size and lr must be positive")
        if self.optimizer not in {"sgd", "adam"} or self.schedule not in {"cosine", "multistep", "constant"}:
            raise ValueError(f"unknown optimizer/schedule {self.optimizer}/{self.schedule}")

    def with_(self, **changes) -> "Recipe":
        return replace(self, **changes)

    def scaled(self, fraction: float, **changes) -> "Recipe":
        """This recipe for a stage of `fraction` times its epochs (the one rule for every method's stages):
        at least one epoch when both are positive, none when either is zero (`--epochs 0` trains nothing)."""
        if fraction < 0:
            raise ValueError(f"an epoch fraction must not be negative, got {fraction}")
        epochs = 0 if self.epochs == 0 or fraction == 0 else max(1, round(self.epochs * fraction))
        return replace(self, epochs=epochs, **changes)

    def with_budget(self, budget: str) -> "Recipe":
        """This recipe at another training budget: `N` epochs, or `xK` (`×K`) times its own; the milestones of a
        multistep schedule move with the epochs (at the same fractions), so a longer budget is the same schedule
        stretched, not extra epochs at the final learning rate."""
        epochs = budget_epochs(budget, self.epochs)
        milestones = tuple(round(m * epochs / self.epochs) for m in self.milestones) if self.epochs else self.milestones
        return replace(self, epochs=epochs, milestones=milestones)

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        sub = f", train subset {self.train_subset}" if self.train_subset else ""
        tsub = f", test subset {self.test_subset}" if self.test_subset else ""
        sched = f"{self.schedule}{list(self.milestones) if self.milestones else ''}"
        return (f"{self.epochs} ep, batch {self.batch_size}, {self.optimizer} lr {self.lr} wd {self.weight_decay}, "
                f"{sched}{sub}{tsub}")


def budget_epochs(budget: str, epochs: int) -> int:
    """Epochs of a budget: "N" (absolute) or "xK" / "×K" (a multiple of `epochs`, at least one when both are
    positive). A malformed budget is one line."""
    text = str(budget).strip()
    try:
        if text[:1] in ("x", "×"):
            factor = float(text[1:])
            if factor <= 0:
                raise ValueError
            return max(1, round(epochs * factor)) if epochs else 0
        value = int(text)
        if value < 0:
            raise ValueError
        return value
    except (ValueError, IndexError):
        raise ValueError(f"a budget is N epochs or xK (a multiple of the profile's), got {budget!r}") from None


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    recipes: dict  # (family, protocol) -> Recipe; family is "mnist" (1-channel 28x28) or "cifar"
    throughput_seconds: float = 2.0  # time spent measuring large-batch throughput per cell
    throughput_batch: int = 256  # images per call of that measurement
    latency_runs: int = 100  # timed batch-1 calls per cell (the median and p90 are taken over them)
    latency_warmup: int = 10  # untimed calls before them

    def recipe(self, family: str, protocol: str = "default") -> Recipe:
        return self.recipes.get((family, protocol)) or self.recipes[(family, "default")]


PROFILES: Registry[Profile] = Registry("profile")

_SMOKE = Recipe(epochs=1, batch_size=64, lr=0.02, train_subset=512, test_subset=512, eval_batch_size=256)
PROFILES.register("smoke", Profile("smoke", "seconds per cell on tiny subsets; for tests and CI only", {
    ("mnist", "default"): _SMOKE,
    ("cifar", "default"): _SMOKE,
    ("mnist", "compression"): _SMOKE.with_(optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="constant"),
}, throughput_seconds=0.1, throughput_batch=32, latency_runs=10, latency_warmup=2))  # smoke figures test code paths, not speed

PROFILES.register("cpu", Profile("cpu", "a 2-core CPU budget: MNIST tables in minutes, CIFAR tables in about two hours", {
    # LeNet-5 reaches ~99 % on MNIST in 12 SGD epochs (~6 s each on 2 cores).
    ("mnist", "default"): Recipe(epochs=12, batch_size=128, lr=0.05, weight_decay=5e-4),
    # ResNet20 trains at ~440 img/s here: 15 epochs on a 20k stratified subset is ~12 min a model.
    ("cifar", "default"): Recipe(epochs=15, batch_size=128, lr=0.1, weight_decay=5e-4, train_subset=20000),
    ("cifar", "adam"): Recipe(epochs=15, batch_size=128, lr=1e-3, optimizer="adam", weight_decay=0.0, train_subset=20000),
    ("mnist", "compression"): Recipe(epochs=10, batch_size=256, lr=1e-3, optimizer="adam", weight_decay=0.0,
                                     schedule="constant"),
    # mdistiller's recipe shrunk to 10 epochs on a 10k subset (milestones at the same fractions, 0.625/0.75/0.875):
    # a teacher, a student and four distillers of ResNet56 -> ResNet20 in about 50 minutes.
    ("cifar", "mdistiller"): Recipe(epochs=10, batch_size=64, lr=0.05, weight_decay=5e-4, schedule="multistep",
                                    milestones=(6, 8, 9), train_subset=10000),
    # Teachers of those students: the students' very images (the same stratified subset, seed 0), 4x their epochs
    # with the milestones at the same fractions, as mdistiller trains its teachers like its students.
    ("cifar", "mdistiller_teacher"): Recipe(epochs=40, batch_size=64, lr=0.05, weight_decay=5e-4, schedule="multistep",
                                            milestones=(25, 30, 35), train_subset=10000),
}))

PROFILES.register("paper", Profile("paper", "each paper's own schedule (GPU); see suite/profiles.py", {
    # EncodeNet Sec. 4.1: baselines lr 0.1, weight decay 1e-4, 300 epochs (schedule not stated: cosine).
    ("mnist", "default"): Recipe(epochs=300, batch_size=128, lr=0.1, weight_decay=1e-4),
    ("cifar", "default"): Recipe(epochs=300, batch_size=128, lr=0.1, weight_decay=1e-4),
    ("cifar", "adam"): Recipe(epochs=300, batch_size=128, lr=1e-3, optimizer="adam", weight_decay=0.0),
    # mdistiller CIFAR-100 recipe: 240 epochs, batch 64, lr 0.05 x0.1 at 150/180/210, wd 5e-4.
    ("cifar", "mdistiller"): Recipe(epochs=240, batch_size=64, lr=0.05, weight_decay=5e-4, schedule="multistep",
                                    milestones=(150, 180, 210)),
    ("cifar", "mdistiller_teacher"): Recipe(epochs=240, batch_size=64, lr=0.05, weight_decay=5e-4, schedule="multistep",
                                            milestones=(150, 180, 210)),  # mdistiller trains its teachers alike
    # Compression paper: Adam lr 1e-3, 10 epochs, batch 256 (TensorFlow 2).
    ("mnist", "compression"): Recipe(epochs=10, batch_size=256, lr=1e-3, optimizer="adam", weight_decay=0.0,
                                     schedule="constant"),
}))


# A student's protocol -> its teacher's. `adam` (the default budget with Adam lr 1e-3, no weight decay) is for
# BN-free students that diverge under the default SGD lr 0.1; their teachers stay the default-recipe cells.
TEACHER_PROTOCOLS = {"mdistiller": "mdistiller_teacher", "adam": "default"}


def teacher_protocol(protocol: str) -> str:
    """The protocol a distillation teacher trains by (its students' own where none is declared)."""
    return TEACHER_PROTOCOLS.get(protocol, protocol)


def dataset_family(in_chans: int) -> str:
    return "mnist" if in_chans == 1 else "cifar"
