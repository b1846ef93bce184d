"""Tables `encodenet` (EncodeNet Table 2) and `ablation` (Tables 3 and 1).

`encodenet`: per (dataset, model), the baseline, EncodeNet, and the baseline trained for as many epochs
as EncodeNet's three trainings together (baseline + autoencoder + head), so a reader sees whether the
gain survives equal compute; the train-cost column counts every stage.
`ablation`: the autoencoder's target (the input itself, the class's lowest-entropy image, the
representative of the image's class and cluster) and the reconstruction loss with and without clustering.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from suite import columns as C
from suite.plugins import method_class
from suite.reference import reported
from suite.spec import CellSpec
from suite.tables import Table, TableOptions, TableRow, register_table
from baselines import model_label
from suite.tables.baselines import DATASET_LABELS, label, on_dataset

PAIRS = {
    "paper": [(d, m) for d in ("cifar10", "cifar100") for m in ("vgg8", "vgg16", "resnet18", "resnet20")],
    "cpu": [("mnist", "lenet5"), ("cifar10", "resnet20")],
    "smoke": [("mnist", "lenet5"), ("cifar10", "resnet20")],
}


def stage_params(profile: str) -> dict[str, Any]:
    """The paper trains the autoencoder for 500 epochs against the baselines' 300."""
    return {"ae_epochs_scale": 5 / 3} if profile == "paper" else {}


def upstream_columns(metrics: dict[str, Any], lookup) -> dict[str, str]:
    """k, features and reconstruction MSE of an EncodeNet cell, read from its upstream stages."""
    targets = lookup("autoencoder", "targets")
    recon = metrics.get("recon_mse")
    out = {"Recon MSE (ours)": f"{recon:.4f}" if recon is not None else "n/a"}
    if targets:
        per_class = targets.get("clusters_per_class") or []
        spread = (str(min(per_class)) if min(per_class) == max(per_class) else f"{min(per_class)}-{max(per_class)}") \
            if per_class else "?"
        k = targets.get("k_chosen") or spread
        out["Clusters / class"] = f"{k} ({'elbow' if targets.get('elbow') else targets.get('clustering')})"
        out["Features"] = str(targets.get("features_used"))
    else:
        out["Clusters / class"], out["Features"] = "—", "—"
    return out


@register_table
class EncodeNetTable(Table):
    name = "encodenet"
    title = "EncodeNet vs baseline (EncodeNet Table 2)"
    description = ("Baseline, EncodeNet (frozen converting-autoencoder encoder + the baseline's classification layers, "
                   "same parameter count) and the baseline trained for EncodeNet's total epochs.")
    columns = [C.PARAMS, C.TOP1, C.N, C.VERDICT_DELTA, C.VERDICT, C.REPORTED, C.DELTA_REPORTED, "Clusters / class",
               "Features", "Recon MSE (ours)", C.LATENCY, C.TRAIN_COST]
    relative = C.verdict_columns(group_by=("Dataset", "Model"))  # EncodeNet and equal epochs against the baseline

    def rows(self, opts: TableOptions) -> list[TableRow]:
        from methods.encodenet import EncodeNetParams

        params = stage_params(opts.profile)
        scale = round(EncodeNetParams(**params).equal_compute_scale, 3)  # a readable cell label (2.333)
        rows = []
        for dataset, model in on_dataset(PAIRS.get(opts.profile, PAIRS["cpu"]), opts.dataset):
            labels = {"Dataset": label(dataset, DATASET_LABELS), "Model": model_label(model)}
            ref = (lambda col: [r] if (r := reported("encodenet", "T2", model, f"{dataset}_{col}", optional=True)) else [])
            rows += [
                TableRow({**labels, "Setup": "Baseline"}, CellSpec.make("baseline", model, dataset, opts.profile),
                         ref("baseline"), role="reference"),
                TableRow({**labels, "Setup": "EncodeNet"},
                         CellSpec.make("encodenet", model, dataset, opts.profile, params=params), ref("encodenet")),
                TableRow({**labels, "Setup": f"Baseline, equal epochs (×{scale:.2f})"},
                         CellSpec.make("baseline", model, dataset, opts.profile, params={"epochs_scale": scale})),
            ]
        return rows

    def cell_columns(self, row, metrics, lookup):
        return upstream_columns(metrics, lookup) if row.spec.method == "encodenet" else {}

    def finalize(self, frame: pd.DataFrame) -> pd.DataFrame:
        for col in ("Clusters / class", "Features", "Recon MSE (ours)"):
            frame[col] = frame[col].fillna("—") if col in frame else "—"
        return frame

    def notes(self, opts: TableOptions) -> list[str]:
        from methods.encodenet import EncodeNetParams

        p = EncodeNetParams(**stage_params(opts.profile))
        return [
            f"EncodeNet stages: baseline (the recipe's epochs) → clustering features + intraclass clustering + "
            f"lowest-entropy representatives → converting autoencoder ({p.ae_epochs_scale:.2f}× the epochs, Adam lr "
            f"{p.ae_lr}, MSE to the representative, encoder initialized from the {p.encoder_init}) → frozen encoder + "
            f"the baseline's classification layers ({p.head_epochs_scale:.2f}× the epochs at {p.head_lr_scale:g}× the "
            f"recipe's lr, initialized from the {p.head_init}). Every stage is a cached cell; train cost counts all of them.",
            f"\"Baseline, equal epochs\" trains the plain baseline for {p.equal_compute_scale:.2f}× the recipe's epochs, "
            "the sum of EncodeNet's three trainings (an autoencoder epoch costs more than a baseline epoch, a "
            "frozen-encoder head epoch much less; see the train-cost wall clock).",
            "Features: `vgg16` = ImageNet VGG16 after conv13 (the paper's), used when its weights are cached; "
            "`baseline` = the trained baseline's penultimate embedding (offline fallback); `pixels` = PCA of pixels.",
            "Recon MSE: autoencoder output vs its target, pixels in [0, 1], on "
            f"{method_class('encodenet_ae').PROBE_IMAGES:,} un-augmented training images.",
            "Reported figures (EncodeNet Table 2) come from 300-epoch baselines and a 500-epoch autoencoder on full "
            "CIFAR; compare them with `paper`-profile runs.",
        ]


ABLATION = {"paper": ("resnet18", "cifar10", ("vgg8", "vgg16", "resnet20")), "cpu": ("resnet20", "cifar10", ()),
            "smoke": ("resnet20", "cifar10", ())}
SETUPS = [  # (label, method, params, Table 3 reported row, Table 1 reported column)
    ("Baseline", "baseline", None, "baseline", None),
    ("No clustering, AE target = input", "encodenet", {"target": "input"}, "no_clustering_target_input", None),
    ("No clustering, AE target = class's lowest-entropy image", "encodenet", {"clustering": "none"},
     "no_clustering_target_class_min_entropy", "recon_no_clustering"),
    ("Clustering, AE target = cluster representative", "encodenet", {}, "clustering_target_cluster_representative",
     "recon_clustering"),
]


@register_table
class AblationTable(Table):
    name = "ablation"
    one_architecture = True  # every row is ResNet20 (or the paper's ResNet18): intervals, not a parameter axis
    training_curves = True
    title = "EncodeNet ablation: autoencoder targets and clustering (EncodeNet Tables 3 and 1)"
    description = ("What the converting autoencoder is trained to output, and whether intraclass clustering lowers "
                   "its reconstruction loss; every EncodeNet row shares the same baseline.")
    columns = [C.TOP1, C.N, C.VERDICT_DELTA, C.VERDICT, C.REPORTED, C.DELTA_REPORTED, "Clusters / class",
               "Recon MSE (ours)", "Recon MSE (reported)", C.TRAIN_COST]
    relative = C.verdict_columns(group_by=("Model",))
    options = frozenset({"model"})
    options_help = "model=NAME: the model of the target ablation (default paper: resnet18; cpu: resnet20)"

    def setting(self, opts: TableOptions) -> tuple[str, str, tuple[str, ...]]:
        model, dataset, recon_models = ABLATION.get(opts.profile, ABLATION["cpu"])
        if "model" in opts.extra:
            from baselines import MODELS

            MODELS.get(opts.extra["model"])  # an unknown name fails here, in one line
            model = opts.extra["model"]
        return model, opts.dataset or dataset, recon_models

    def rows(self, opts: TableOptions) -> list[TableRow]:
        model, dataset, recon_models = self.setting(opts)
        base = stage_params(opts.profile)
        rows = []
        for m, setups in [(model, SETUPS)] + [(r, SETUPS[2:]) for r in recon_models]:
            for text, method, params, t3_row, t1_col in setups:
                spec = CellSpec.make(method, m, dataset, opts.profile, params=None if params is None else {**base, **params})
                t3 = reported("encodenet", "T3", t3_row, "top1") if (m, dataset) == ("resnet18", "cifar10") else None
                t1 = reported("encodenet", "T1", m, t1_col) if t1_col and dataset == "cifar10" else None
                rows.append(TableRow({"Model": model_label(m), "Setup": text}, spec, [t3] if t3 else [],
                                     {"Recon MSE (reported)": f"{t1.value:g}" + (f" ({t1.note})" if t1.note else "")
                                      if t1 else "—"}, role="reference" if method == "baseline" else ""))
        return rows

    def cell_columns(self, row, metrics, lookup):
        return upstream_columns(metrics, lookup) if row.spec.method == "encodenet" else {}

    def finalize(self, frame: pd.DataFrame) -> pd.DataFrame:
        for col in ("Clusters / class", "Recon MSE (ours)"):
            frame[col] = frame[col].fillna("—") if col in frame else "—"
        return frame

    def notes(self, opts: TableOptions) -> list[str]:
        model, dataset, _ = self.setting(opts)
        notes = ["Reported Table 3 figures are ResNet18 on CIFAR-10; reported reconstruction losses (Table 1) are after "
                 "500 autoencoder epochs on CIFAR-10 (\"without clustering\" is read as one lowest-entropy target per "
                 "class).",
                 "Recon MSE (ours): autoencoder output vs its own target on "
                 f"{method_class('encodenet_ae').PROBE_IMAGES:,} un-augmented training images, pixels "
                 "in [0, 1]; the target=input row reconstructs the input, so its loss measures a different task."]
        if (model, dataset, opts.profile) == ("resnet20", "cifar10", "cpu"):
            from methods.encodenet import EncodeNetParams

            head = EncodeNetParams()
            notes.append("Why \"AE target = input\" is low (investigated, [ablation_probe.md](ablation_probe.md): linear "
                         "probes of that row's frozen encoder, seed 0, by `python benchmarks/probe_frozen_encoder.py`): "
                         "not the frozen BatchNorm statistics (re-estimating them on the training images changes the "
                         "probe by under half a point); partly the head's short schedule (the EncodeNet head trains "
                         f"{head.head_epochs_scale:.2g}x the recipe's epochs at {head.head_lr_scale:g}x its lr, from "
                         "the baseline's classifier, which a longer, well-conditioned probe of the same 64 channel "
                         "means beats by several points); and "
                         "mostly the objective: an encoder trained to reproduce its input keeps the image spatially "
                         "(a probe of its unpooled map does far better than one of its channel means) but its pooled "
                         "features stay far less class-separable than the baseline encoder's, under any probe tried. "
                         "So the row measures the method at this budget, not a defect; the paper's Table 3 figure for "
                         "this setup (ResNet18, 500 autoencoder epochs) is not approached by any linear head here.")
        if model != "resnet18":
            notes.append(f"This run uses {model} on {dataset} (the paper's ablation is ResNet18 on CIFAR-10, which a "
                         "2-core CPU cannot train in a session), so the reported accuracies are not compared.")
        return notes
