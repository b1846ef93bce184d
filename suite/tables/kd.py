"""Table `kd`: knowledge distillation on CIFAR-100 in the layout of EncodeNet Table 4.

Rows: teacher, student baseline, KD, RKD, FitNet, FT, EncodeNet (no teacher); one column group per
teacher -> student pair. Each distiller cell depends on the pair's teacher (a `baseline` cell, trained
once and shared); the train-cost column counts the teacher too, because a fair reader must see it.
"""
from __future__ import annotations

from suite.plugins import METHODS, discover_methods
from suite.reference import reported
from suite.spec import CellSpec
from suite.tables import Table, TableOptions, TableRow, register_table
from suite.tables.baselines import MODEL_LABELS, label

PAPER_PAIRS = [("resnet110", "resnet32"), ("vgg16", "vgg8")]  # EncodeNet Table 4
CPU_PAIRS = [("resnet56", "resnet20")]  # an mdistiller pair a 2-core machine can train (ResNet110 runs ~60 img/s)
METHOD_ROWS = [("teacher", "Teacher (baseline)"), ("student", "Student baseline"), ("kd", "KD (Hinton)"),
               ("rkd", "RKD"), ("fitnet", "FitNet"), ("ft", "FT (factor transfer)"), ("encodenet", "EncodeNet (no teacher)")]


def parse_pairs(text: str) -> list[tuple[str, str]]:
    from baselines import model_names

    pairs = []
    for item in text.split(","):
        teacher, sep, student = item.strip().partition(":")
        if not sep:
            raise ValueError(f"pairs take TEACHER:STUDENT[,TEACHER:STUDENT...], got {item!r}")
        for m in (teacher, student):
            if m not in model_names():
                raise ValueError(f"unknown model {m!r} in pairs; valid: {', '.join(model_names())}")
        pairs.append((teacher, student))
    return pairs


@register_table
class KDTable(Table):
    name = "kd"
    title = "Knowledge distillation (EncodeNet Table 4)"
    description = ("Students distilled from a teacher by KD, RKD, FitNet and FT, beside the student trained alone "
                   "under the same recipe; EncodeNet uses no teacher.")
    pivot = ("Method", "Pair")
    options = frozenset({"pairs"})
    options_help = ("pairs=TEACHER:STUDENT[,...] (default paper: resnet110:resnet32,vgg16:vgg8; cpu: resnet56:resnet20; "
                    "mdistiller also publishes resnet32x4:resnet8x4, vgg13:vgg8)")

    def pairs(self, opts: TableOptions) -> list[tuple[str, str]]:
        if "pairs" in opts.extra:
            return parse_pairs(opts.extra["pairs"])
        return PAPER_PAIRS if opts.profile == "paper" else CPU_PAIRS

    def rows(self, opts: TableOptions) -> list[TableRow]:
        discover_methods()
        dataset = opts.dataset or "cifar100"
        rows = []
        for teacher, student in self.pairs(opts):
            pair = f"{label(teacher, MODEL_LABELS)} → {label(student, MODEL_LABELS)}"
            ref_column = f"{teacher}_{student}"
            for method, row_label in METHOD_ROWS:
                model = teacher if method == "teacher" else student
                if method in ("teacher", "student"):
                    spec = CellSpec.make("baseline", model, dataset, opts.profile, protocol="mdistiller")
                elif method in METHODS:
                    params = {} if method == "encodenet" else {"teacher": teacher}
                    spec = CellSpec.make(method, student, dataset, opts.profile, params=params, protocol="mdistiller")
                else:
                    spec = None
                ref = reported("encodenet", "T4", method, ref_column) if dataset == "cifar100" else None
                rows.append(TableRow({"Method": row_label, "Pair": pair}, spec, [ref] if ref else []))
        return rows

    def summary_lines(self, rows, lines):
        out = []
        for row, line in zip(rows, lines):
            if row.labels["Method"] in ("Teacher (baseline)", "Student baseline") and row.spec is not None:
                out.append(f"{row.labels['Method'].split(' ')[0]} {label(row.spec.model, MODEL_LABELS)} "
                           f"({row.labels['Pair']}): top-1 {line['Top-1 % (ours)']} %")
        return out

    def notes(self, opts: TableOptions) -> list[str]:
        notes = ["Train cost: epochs and wall clock of the row's own training plus everything it needed "
                 "(a distilled student includes its teacher; FT includes its paraphraser stage).",
                 "Reported figures (EncodeNet Table 4, CIFAR-100, run with mdistiller) exist only for ResNet110 → ResNet32 "
                 "and VGG16 → VGG8 on CIFAR-100."]
        if opts.dataset and opts.dataset != "cifar100":
            notes.append(f"Run on {opts.dataset} instead of CIFAR-100 (no reported figures apply).")
        return notes
