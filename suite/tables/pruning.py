"""Table `pruning`: pruning compared the way ShrinkBench asks (Blalock et al. 2020, "What is the state of
neural network pruning?").

For each (architecture, dataset) pair, one trained baseline cell (the `baselines` table's own) is
pruned to compression ratios 2, 4, 8, 16, 32 by global magnitude, layer-wise magnitude and random
unstructured pruning, and by L2 and random channel pruning, each fine-tuned by the same recipe.
Reported per operating point: the ratio asked and achieved (dense / non-zero parameters), FLOPs after
removal (non-zero weights only) and the theoretical speed-up they give, the measured batch-1 and
large-batch speed-ups on this machine (at the profile's throughput batch, named in the header), and
top-1 with its verdict against the dense fine-tuned control (and its Δ to the untouched baseline).
Plots: top-1 against achieved ratio and against measured speed-up, one line per method.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from suite import columns as C
from suite.columns import Relative
from suite.spec import CellSpec
from suite.tables import Table, TableOptions, TableRow, register_table
from baselines import model_label
from suite.tables.baselines import DATASET_LABELS

RATIOS = (2, 4, 8, 16, 32)
PAIRS = {"smoke": [("lenet5", "mnist"), ("resnet8", "cifar10")], "cpu": [("lenet5", "mnist"), ("resnet20", "cifar10")],
         "paper": [("lenet5", "mnist"), ("resnet20", "cifar10"), ("resnet56", "cifar10"), ("vgg16", "cifar10")]}
ACHIEVED, THEORETICAL = "Ratio (achieved)", "Theoretical speed-up"
CONTROL = C.CONTROL
SPEEDUP_B1, SPEEDUP_BN = "Speed-up b1 (measured)", "Speed-up throughput (measured)"  # its batch: the profile's


def unstructured(criterion: str, scope: str):
    # ShrinkBench's ratio: the whole model's parameters over its non-zero ones, the classifier exempt
    return lambda r: ("prune", {"compression": float(r), "scope": scope, "criterion": criterion})


def channels(importance: str):
    # a fraction c of every layer's channels leaves about (1 - c)^2 of a conv's weights
    return lambda r: ("structured_prune", {"ratio": round(1 - 1 / math.sqrt(r), 4), "importance": importance})


METHODS = {"Global magnitude": unstructured("magnitude", "global"),
           "Layer-wise magnitude": unstructured("magnitude", "layer"),
           "Global random": unstructured("random", "global"),
           "Channels, L2": channels("l2"),
           "Channels, random": channels("random")}


@register_table
class PruningTable(Table):
    name = "pruning"
    title = "Pruning: ratio sweeps against random and magnitude baselines (ShrinkBench layout)"
    budget_keeps = ("baseline", "reference")  # --budgets is a fine-tuning budget: every row prunes the same baseline
    description = ("Unstructured (global / layer-wise magnitude, random) and channel (L2, random) pruning of one "
                   "trained baseline per pair at compression ratios 2-32, each fine-tuned by the same recipe.")
    columns = [C.NONZERO, ACHIEVED, C.FLOPS_NONZERO, THEORETICAL, C.LATENCY, SPEEDUP_B1, SPEEDUP_BN, C.TOP1, C.N,
               C.VERDICT_DELTA, C.VERDICT, C.DELTA_UNTOUCHED, C.TRAIN_COST]
    relative = [Relative(ACHIEVED, "_nonzero_params", "ratio", ("Pair",), template="{:.1f}×"),
                Relative(THEORETICAL, "_flops_nonzero", "ratio", ("Pair",), template="{:.2f}×"),
                Relative(SPEEDUP_B1, "_latency_ms", "ratio", ("Pair",), template="{:.2f}×", missing="n/a"),
                Relative(SPEEDUP_BN, "_image_seconds", "ratio", ("Pair",), template="{:.2f}×", missing="n/a")] \
        + C.verdict_columns(("Pair",), "control") + [C.delta_to_untouched(("Pair",))]  # verdicts: against the control

    def cell_columns(self, row: TableRow, metrics: dict, lookup) -> dict:
        """The raw figures of the theoretical and throughput speed-ups (this table's own)."""
        throughput = metrics.get("throughput_img_s")
        return {"_flops_nonzero": metrics.get("flops_nonzero"), "_image_seconds": 1 / throughput if throughput else None}

    def rows(self, opts: TableOptions) -> list[TableRow]:
        rows = []
        for model, dataset in PAIRS.get(opts.profile, PAIRS["cpu"]):
            dataset = opts.dataset or dataset
            pair = f"{model_label(model)} / {DATASET_LABELS.get(dataset, dataset)}"
            rows.append(TableRow({"Pair": pair, "Method": "Dense baseline", "Ratio (asked)": "1×"},
                                 CellSpec.make("baseline", model, dataset, opts.profile), role="reference"))
            # the control: the dense baseline fine-tuned exactly like every pruned row (sparsity 0)
            rows.append(TableRow({"Pair": pair, "Method": CONTROL, "Ratio (asked)": "1×"},
                                 CellSpec.make("prune", model, dataset, opts.profile, params={"sparsity": 0.0}),
                                 role="control"))
            for text, make in METHODS.items():
                for r in RATIOS:
                    method, params = make(r)
                    rows.append(TableRow({"Pair": pair, "Method": text, "Ratio (asked)": f"{r}×"},
                                         CellSpec.make(method, model, dataset, opts.profile, params=params)))
        return rows

    def plot(self, frame: pd.DataFrame, opts: TableOptions, out_dir: Path) -> list[Path]:
        """Per pair: top-1 (mean and 95 % interval over seeds) against achieved ratio, a line per method, and against
        measured batch-1 speed-up (points: a method's speed-ups are not ordered by its ratio)."""
        from matplotlib.ticker import FuncFormatter

        from suite.plots import _pyplot, seed_interval

        plt, paths = _pyplot(), []
        for pair, group in frame.groupby("Pair", sort=False):
            ref, pruned = group[group["_role"] == "reference"], group[~group["_role"].isin(["reference", "control"])]
            control = group[group["_role"] == "control"]
            if ref.empty or ref["_top1_mean"].isna().all() or pruned["_top1_mean"].isna().all():
                continue  # nothing to draw yet
            ref = ref.iloc[0]
            fig, axes = plt.subplots(1, 2, figsize=(11, 4))
            for method, rows in pruned.groupby("Method", sort=False):
                rows = rows[rows["_top1_mean"].notna()]
                if rows.empty:
                    continue
                ratio = ref["_nonzero_params"] / rows["_nonzero_params"]
                speedup = ref["_latency_ms"] / rows["_latency_ms"]
                half = [seed_interval(v) or 0.0 for v in rows["_top1_values"]]  # 95 % interval over seeds
                line = axes[0].errorbar(ratio, rows["_top1_mean"], yerr=half, fmt="o-", capsize=2, label=method)
                axes[1].errorbar(speedup, rows["_top1_mean"], yerr=half, fmt="o", capsize=2, label=method,
                                 color=line[0].get_color())  # speed-ups of one method are not ordered: no line
            axes[0].set_xscale("log", base=2)  # the asked ratios double: 2, 4, ..., 32
            axes[0].xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}×"))
            axes[1].xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:.2g}×"))  # linear: they span little
            for ax, xlabel in zip(axes, ("compression ratio (dense / non-zero parameters)", "measured batch-1 speed-up "
                                         "(dense kernels: unstructured zeros are not skipped)")):
                ax.axhline(ref["_top1_mean"], color="k", ls="--", lw=1, label="dense baseline (untouched)")
                if not control.empty and not control["_top1_mean"].isna().all():
                    ax.axhline(control["_top1_mean"].iloc[0], color="tab:red", ls=":", lw=1.5,
                               label="dense + the same fine-tuning (control)")
                ax.set_xlabel(xlabel, fontsize=8)
                ax.set_ylim(top=min(ax.get_ylim()[1], 100.5))  # an interval past 100 % says only "few seeds"
                ax.set_ylabel("top-1 (%)")
                ax.grid(True, alpha=0.3)
            axes[1].legend(fontsize=7)
            fig.suptitle(f"{pair}, profile {opts.profile}", fontsize=9)
            fig.tight_layout()
            path = out_dir / f"pruning_curves_{pair.split(' / ')[0].lower().replace('-', '')}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            paths.append(path)
        return paths

    def notes(self, opts: TableOptions) -> list[str]:
        return [
            "Compression ratio, as ShrinkBench defines it: all parameters of the model (biases, BatchNorm and the "
            "classifier included) over its non-zero ones. Unstructured rows ask for ratio r over the whole model: "
            "the fraction of conv and linear weights to keep is solved by ShrinkBench's `fraction_to_keep`, with "
            "the classifier layer exempt (ShrinkBench's `is_classifier`) and biases unpruned, so the achieved ratio "
            "equals the asked one to rounding. Channel rows remove a fraction 1 - 1/√r of every layer's channels "
            "but the classifier's (a conv keeps about (1 - c)² of its weights), so their achieved ratio departs "
            "from the asked one; it is shown beside it.",
            "FLOPs after removal count the conv and linear multiply-adds of non-zero weights only (what a kernel "
            "that skips pruned weights would do); the theoretical speed-up is the dense baseline's FLOPs over them. "
            "Measured speed-ups time the saved model on this CPU (dense kernels: unstructured zeros are not skipped).",
            "Every pruned row starts from the pair's dense baseline cell (the `baselines` table's) and fine-tunes "
            "for half the recipe's epochs; random rows are seeded by the cell's seed. Verdicts (and the Δ beside "
            f"them) compare with \"{CONTROL}\": the dense baseline fine-tuned exactly like the pruned rows without "
            "pruning anything, so a verdict says what pruning did, not what the extra epochs did. The Δ to the untouched "
            "dense baseline, which trained fewer epochs, is the column after them (the ratios and speed-ups are "
            "against the untouched baseline: the control has its parameters and its speed).",
        ]
