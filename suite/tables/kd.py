"""Table `kd`: knowledge distillation on CIFAR-100 in the layout of EncodeNet Table 4.

Rows: teacher, student baseline, every registered distiller (the paper's KD, RKD, FitNet, FT first),
EncodeNet (no teacher); one column group per
teacher -> student pair. Each distiller cell depends on the pair's teacher (a `baseline` cell, trained
once and shared); the train-cost column counts the teacher too, because a fair reader must see it.
"""
from __future__ import annotations

from suite import columns as C
from suite.distill import teacher_spec
from suite.plugins import discover_methods
from suite.profiles import Recipe
from suite.reference import reported
from suite.spec import CellSpec
from suite.stats import rank_agreement
from suite.tables import Table, TableOptions, TableRow, method_label, register_table
from baselines import model_label

PAPER_PAIRS = [("resnet110", "resnet32"), ("vgg16", "vgg8")]  # EncodeNet Table 4
CPU_PAIRS = [("resnet56", "resnet20")]  # an mdistiller pair a 2-core machine can train (ResNet110 runs ~60 img/s)
# CIFAR-100 figures for the same pair and method, the first one found is the one Δ compares with.
REPORTED_SOURCES = [("encodenet", "T4"), ("repdistiller", "README"), ("mdistiller", "README")]
PAPER_DISTILLERS = ("kd", "rkd", "fitnet", "ft")  # EncodeNet Table 4's order; other registered distillers follow


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
    description = ("Students distilled from a teacher by every registered distiller (EncodeNet's KD, RKD, FitNet, FT "
                   "first), beside the student trained alone under the same recipe; EncodeNet uses no teacher.")
    pivot = ("Method", "Pair")
    family = "distiller"
    one_architecture = True
    training_curves = True  # were the rows still climbing at the budget, and do the seeds agree?
    columns = C.DEFAULT + [C.VERDICT_DELTA, C.VERDICT]
    relative = C.verdict_columns(group_by=("Pair",))  # every row against the student trained alone
    options = frozenset({"pairs", "teacher_checkpoint"})
    options_help = ("pairs=TEACHER:STUDENT[,...] (default paper: resnet110:resnet32,vgg16:vgg8; cpu: resnet56:resnet20; "
                    "mdistiller also publishes resnet32x4:resnet8x4, vgg13:vgg8); teacher_checkpoint=PATH (one pair) or "
                    "TEACHER:PATH[,...]: the teacher loaded from a file (the suite's, mdistiller's or RepDistiller's "
                    "layout) instead of trained")

    def teacher_checkpoints(self, opts: TableOptions) -> dict[str, str]:
        """Teacher model -> checkpoint file, from `teacher_checkpoint=PATH` or `TEACHER:PATH,...`."""
        text = opts.extra.get("teacher_checkpoint", "")
        if not text:
            return {}
        teachers = [t for t, _ in self.pairs(opts)]
        found = {}
        for item in text.split(","):
            model, sep, path = item.strip().partition(":")
            if sep and model in teachers:
                found[model] = path
            elif len(set(teachers)) == 1:
                found[teachers[0]] = item.strip()
            else:
                raise ValueError(f"teacher_checkpoint: with several pairs give TEACHER:PATH (teachers: "
                                 f"{', '.join(dict.fromkeys(teachers))}), got {item!r}")
        return found

    def pairs(self, opts: TableOptions) -> list[tuple[str, str]]:
        if "pairs" in opts.extra:
            return parse_pairs(opts.extra["pairs"])
        return PAPER_PAIRS if opts.profile == "paper" else CPU_PAIRS

    def row(self, opts: TableOptions, teacher: str, student: str, method: str, text: str, spec: CellSpec,
            **kw) -> TableRow:
        dataset = opts.dataset or "cifar100"
        # optional: each source's table covers some of the distillers and pairs only
        refs = [reported(*source, method, f"{teacher}_{student}", optional=True) for source in REPORTED_SOURCES] \
            if dataset == "cifar100" else []
        pair = f"{model_label(teacher)} → {model_label(student)}"
        return TableRow({"Method": text, "Pair": pair}, spec, [r for r in refs if r], **kw)

    def method_rows(self, opts: TableOptions, method: str, params: dict) -> list[TableRow]:
        """A distiller's row in every pair (its teacher is the pair's, unless `params` name another)."""
        dataset = opts.dataset or "cifar100"
        text = method_label(method, params)
        files = self.teacher_checkpoints(opts)

        def of(teacher: str) -> dict:
            loaded = {"teacher_checkpoint": files[teacher]} if teacher in files else {}
            return {"teacher": teacher, **loaded, **params}

        return [self.row(opts, teacher, student, method, text,
                         CellSpec.make(method, student, dataset, opts.profile, params=of(teacher), protocol="mdistiller"))
                for teacher, student in self.pairs(opts)]

    def rows(self, opts: TableOptions) -> list[TableRow]:
        """Teacher and student of every pair, every registered distiller (the paper's four first), EncodeNet."""
        discover_methods()
        dataset = opts.dataset or "cifar100"

        def fixed(method: str, text: str, model_of, protocol: str, **kw) -> list[TableRow]:
            return [self.row(opts, t, s, method, text, CellSpec.make(model_of[0], model_of[1](t, s), dataset,
                                                                     opts.profile, protocol=protocol), **kw)
                    for t, s in self.pairs(opts)]

        files = self.teacher_checkpoints(opts)

        def teacher_row(t: str, s: str) -> TableRow:  # what every distiller's teacher is (suite.distill.teacher_spec)
            spec = teacher_spec(CellSpec.make("baseline", s, dataset, opts.profile, protocol="mdistiller"), t)
            if t in files:
                spec = spec.with_(method="pretrained", params={"checkpoint": files[t]})
                return self.row(opts, t, s, "teacher", "Teacher (from checkpoint)", spec, role="teacher",
                                single_seed=True)
            return self.row(opts, t, s, "teacher", "Teacher (baseline)", spec, role="teacher", single_seed=True)

        return ([teacher_row(t, s) for t, s in self.pairs(opts)]
                + fixed("student", "Student baseline", ("baseline", lambda t, s: s), "mdistiller", role="reference")
                + self.family_rows(opts, set(), first=PAPER_DISTILLERS)
                + fixed("encodenet", "EncodeNet (no teacher)", ("encodenet", lambda t, s: s), "mdistiller"))

    def summary_lines(self, rows, lines):
        """Each pair's teacher and student accuracies, and a warning where the teacher is not the better one."""
        out, by_pair = [], {}
        for row, line in zip(rows, lines):
            if row.role in ("teacher", "reference") and row.spec is not None:
                by_pair.setdefault(row.labels["Pair"], {})[row.role] = line["_top1_mean"]
                name = "Teacher" if row.role == "teacher" else "Student"
                source = ""
                if row.spec.method == "pretrained":
                    from suite.checkpoints import file_sha256

                    path = row.spec.params_dict["checkpoint"]
                    source = f", loaded from {path} (sha256 {file_sha256(path)[:12]}), not trained here"
                out.append(f"{name} {model_label(row.spec.model)} ({row.labels['Pair']}): top-1 {line[C.TOP1]} %"
                           f" (n = {line[C.N]}){source}")
        out += rank_agreement_lines(rows, lines)
        for pair, acc in by_pair.items():
            teacher, student = acc.get("teacher"), acc.get("reference")
            if teacher is not None and student is not None and teacher <= student:
                out.append(f"WARNING: the teacher of {pair} ({teacher:.2f} %) is not better than its student trained "
                           f"alone ({student:.2f} %): the distillation rows of this pair measure nothing about distillation")
        return out

    def notes(self, opts: TableOptions) -> list[str]:
        notes = ["Train cost: epochs and wall clock of the row's own training plus everything it needed "
                 "(a distilled student includes its teacher; FT includes its paraphraser stage).",
                 "The teacher is trained once (seed 0) by its own recipe (protocol `mdistiller_teacher`, in the header) "
                 "and shared by every student, seed and table; the student baseline and every distilled student train "
                 "on the same data by the same recipe (protocol `mdistiller`). Verdicts compare each row with the "
                 "student baseline (Welch 95 % interval over seeds); a row with fewer finished seeds than the "
                 "header's shows its own n, and one seed gives no verdict.",
                 "Distillers use their paper's defaults (mdistiller / RepDistiller config values; docstrings in "
                 "methods/); AB and FSP train the student's feature layers on their loss first (1/8 of the epochs), "
                 "then on cross-entropy, as RepDistiller does; DKD's and ReviewKD's warm-up is 20/240 of the epochs.",
                 "Reported figures (CIFAR-100 only): EncodeNet Table 4 (ResNet110 → ResNet32, VGG16 → VGG8, run with "
                 "mdistiller), the RepDistiller / CRD README (ResNet56 → ResNet20, ResNet110 → ResNet32, ResNet32x4 → "
                 "ResNet8x4, VGG13 → VGG8) and mdistiller's README (KD, DKD); their protocols are in brackets."]
        if opts.dataset and opts.dataset != "cifar100":
            notes.append(f"Run on {opts.dataset} instead of CIFAR-100 (no reported figures apply).")
        return notes

    def cell_notes(self, rows, row_cells):
        """Which images each pair's teacher and student baseline trained on, from their planned recipes."""
        by_pair: dict[str, dict] = {}
        for row, cells in zip(rows, row_cells):
            if row.role in ("teacher", "reference") and cells and row.spec.method != "pretrained":
                by_pair.setdefault(row.labels["Pair"], {})[row.role] = cells[0].recipe
        return list(dict.fromkeys(training_images_note(r["teacher"], r["reference"]) for r in by_pair.values()
                                  if {"teacher", "reference"} <= set(r)))


def training_images_note(teacher: Recipe, student: Recipe) -> str:
    """Which training images the teacher and the students saw: the same ones, or a warning naming both."""
    def images(recipe) -> str:
        return (f"the same stratified {recipe.train_subset:,}-image subset of the training split (seed 0)"
                if recipe.train_subset else "the whole training split")

    if teacher.train_subset == student.train_subset:
        return (f"Training images: the teacher and every student (and the student baseline) train on "
                f"{images(student)}; the teacher trains {teacher.epochs} epochs, the students {student.epochs}.")
    return (f"WARNING: the teacher trains on {images(teacher)} and the students on {images(student)}: a distiller's "
            f"gain then includes what the teacher learned from images its student never sees.")


RANKED_SOURCES = [("repdistiller", "README", "RepDistiller's README")]  # one CIFAR-100 table of many distillers


def rank_agreement_lines(rows: list[TableRow], lines: list[dict]) -> list[str]:
    """Per pair, Kendall's tau between the suite's ordering of the distillers and RepDistiller's reported CIFAR-100
    ordering of the same pair (issue 26): whether the suite's ordering carries the papers', here."""
    out = []
    pairs = dict.fromkeys((r.spec.params_dict.get("teacher"), r.spec.model, r.labels["Pair"]) for r in rows
                          if r.spec is not None and r.role == "" and "teacher" in r.spec.params_dict)
    for teacher, student, pair in pairs:
        ours = {r.spec.method: line["_top1_values"] for r, line in zip(rows, lines)
                if r.spec is not None and r.role == "" and r.labels["Pair"] == pair and line.get("_top1_values")}
        for paper, table, name in RANKED_SOURCES:
            theirs = {m: f.value for m in ours
                      if (f := reported(paper, table, m, f"{teacher}_{student}", optional=True)) is not None}
            agreement = rank_agreement(ours, theirs)
            if agreement is None:
                continue
            seeds = sorted({len(ours[m]) for m in theirs})
            out.append(f"Rank agreement ({pair}): Kendall's τ = {agreement.tau:+.2f} [95 % bootstrap over seeds "
                       f"{agreement.low:+.2f}, {agreement.high:+.2f}] between this table's ordering of the {agreement.n} "
                       f"distillers {name} reports for the pair and its CIFAR-100 ordering (seeds per row: "
                       f"{', '.join(map(str, seeds))}); τ near +1 means the suite ranks the distillers as the paper "
                       f"does at this dataset and budget, near 0 that its ordering carries none of the paper's, "
                       f"below 0 that it reverses it")
    return out