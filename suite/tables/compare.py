"""Table `compare`: any registered methods side by side on one model and dataset, by the same recipe and
seeds, with the standard columns and a verdict of every row against the first.

    python run_all.py --table compare --methods baseline,kd,label_smoothing --model resnet20 --dataset cifar10 \\
        --teacher resnet56
"""
from __future__ import annotations

from suite import columns as C
from suite.distill import teacher_spec
from suite.plugins import get_method
from suite.spec import CellSpec
from suite.tables import (
    MethodChoice,
    Table,
    TableOptions,
    TableRow,
    check_choice,
    method_label,
    parse_methods,
    register_table,
)
from baselines import model_label


@register_table
class CompareTable(Table):
    name = "compare"
    one_architecture = True  # one --model: parameters say nothing, intervals do
    training_curves = True  # were the rows still climbing at the budget, and do the seeds agree?
    title = "Methods side by side"
    description = ("The methods named by --methods, each trained on the same model, data, recipe and seeds; every row is "
                   "compared with the first (difference of mean top-1, Welch 95 % interval, verdict).")
    columns = C.DEFAULT + [C.VERDICT_DELTA, C.VERDICT]
    relative = C.verdict_columns()
    methods_are_rows = True  # --methods is this table's list of rows, not a change to it
    options = frozenset({"model", "teacher"})
    flags = {"model": "the model of --table compare (the option model=NAME of any table that has one, e.g. ablation)",
             "teacher": "the teacher model of distillers in --table compare"}
    options_help = "model=NAME (or --model NAME), teacher=NAME (or --teacher NAME): the model, and the distillers' teacher"

    def choices(self, opts: TableOptions) -> list[MethodChoice]:
        if not opts.extra.get('model'):
            raise ValueError("table 'compare' needs --model NAME (and --methods NAME,NAME,...)")
        if not opts.extra.get('model').startswith("timm:"):
            from baselines import MODELS

            MODELS.get(opts.extra.get('model'))  # an unknown model fails here, in one line
        if not opts.methods:
            raise ValueError("table 'compare' needs --methods NAME,NAME,... (the first is the reference)")
        choices = parse_methods(opts.methods)
        if any(c.op != "=" for c in choices):
            raise ValueError("table 'compare' takes a list of methods (NAME,NAME[key=value],...), not +NAME / -NAME")
        return [check_choice(self, c) for c in choices]

    def rows(self, opts: TableOptions) -> list[TableRow]:
        dataset = opts.dataset or "cifar10"
        rows, teachers_shown = [], set()
        for i, choice in enumerate(self.choices(opts)):
            params = dict(choice.params or {})
            method = get_method(choice.name)
            if method.family == "distiller" and not params.get("teacher_checkpoint"):
                if "teacher" not in params and opts.extra.get('teacher'):  # else the distiller's own default teacher
                    params["teacher"] = opts.extra.get('teacher')
                teacher = method.make_params(params).teacher
                if teacher not in teachers_shown:  # the teacher the distillers learn from, for the reader (its own cell)
                    student = CellSpec.make(choice.name, opts.extra.get('model'), dataset, opts.profile, params=params)
                    rows.append(TableRow({"Method": f"Teacher {model_label(teacher)} (baseline)"},
                                         teacher_spec(student, teacher), role="teacher"))
                    teachers_shown.add(teacher)
            text = method_label(choice.name, choice.params)
            rows.append(TableRow({"Method": text}, CellSpec.make(choice.name, opts.extra.get('model'), dataset, opts.profile,
                                                                 params=params), role="reference" if i == 0 else ""))
        return rows

    def summary_lines(self, rows, lines):
        """Where rows trained for different numbers of epochs, say so: a gain may be the epochs', not the method's."""
        epochs = {line["Method"]: line["_train_epochs"] for row, line in zip(rows, lines)
                  if line.get("_train_epochs") is not None and row.role != "teacher"}
        if len(set(epochs.values())) < 2:
            return []
        listed = ", ".join(f"{method} {n}" for method, n in epochs.items())
        return [f"Epochs differ between rows (as in Train cost: each row's own stages plus everything it needed, a "
                f"distiller's teacher included): "
                f"{listed}. A row that trains longer than the first may gain from the epochs alone: compare it with "
                f"a control given the same epochs (e.g. `baseline[epochs_scale=...]`), as the pruning table does"]

    def notes(self, opts: TableOptions) -> list[str]:
        return [f"Model {opts.extra.get('model')} on {opts.dataset or 'cifar10'}; every method trains by the profile's recipe for that "
                "kind of data at its default params unless set in --methods; a distiller's teacher is the `baseline` "
                "cell of --teacher, else of the distiller's default teacher (its row is shown; train cost includes it)."]
