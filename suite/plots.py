"""Plots beside each table: top-1 against parameters and against batch-1 latency, one point per row (a reported
figure is not drawn there: the papers do not report our x); for a table whose rows share one architecture (kd,
compare, ablation), where parameters say nothing, a dot-and-interval chart of top-1 instead: mean and 95 %
interval over seeds per row, the reference row marked, reported figures as hollow markers on their own value."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    import torch


def mean_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float | None]:
    """Mean and the half-width of its t interval over seeds (None with one seed: no interval)."""
    import statistics

    from scipy.stats import t

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    return mean, float(t.ppf((1 + confidence) / 2, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5)


def plain_number(value: float) -> str:
    """A tick label a reader reads at a glance: 0.5, 2, 40 K, 7.5 M (not 5×10^-1)."""
    for scale, suffix in ((1e6, " M"), (1e3, " K")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def readable_log_axis(ax, axis: str = "x") -> None:
    """Log scale labelled in plain numbers, with as many labelled ticks as the span allows: every 1-9 multiple
    within a decade, 1-2-5 over two, powers of ten beyond (a narrow span got a single tick or none before)."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    low, high = ax.get_xlim() if axis == "x" else ax.get_ylim()
    decades = math.log10(high / low) if low > 0 and high > low else 1.0
    subs = tuple(range(1, 10)) if decades <= 1 else (1, 2, 5) if decades <= 2.5 else (1,)
    which = ax.xaxis if axis == "x" else ax.yaxis
    which.set_major_locator(LogLocator(base=10, subs=subs))
    which.set_major_formatter(FuncFormatter(lambda v, _: plain_number(v)))
    which.set_minor_formatter(NullFormatter())


def seed_interval(values) -> float | None:
    """Half-width of a row's 95 % top-1 interval over its seeds (None: one seed, or none recorded)."""
    if not isinstance(values, list) or len(values) < 2:
        return None
    return mean_interval(values)[1]


def interval_figure(frame: pd.DataFrame, label_columns: list[str], title: str):
    """One line per finished row: its mean top-1 with the 95 % interval over seeds as a horizontal bar, the
    reference row in black with a dashed line through its mean, a reported figure as a hollow marker."""
    plt = _pyplot()
    done = frame[frame["_top1_values"].map(lambda v: isinstance(v, list) and len(v) > 0)]
    if done.empty:
        return None
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(done) + 1.8))
    for y, (_, r) in enumerate(done.iloc[::-1].iterrows()):  # first row on top
        mean, half = mean_interval(r["_top1_values"])
        reference = r["_role"] == "reference"
        color = "black" if reference else plt.cm.tab20.colors[y % 20]
        ax.errorbar(mean, y, xerr=None if half is None else [[half], [half]], fmt="s" if reference else "o",
                    color=color, capsize=3, zorder=3)
        if reference:
            ax.axvline(mean, color="black", ls="--", lw=1, zorder=1)
        if pd.notna(r.get("_reported")):
            ax.scatter(r["_reported"], y, facecolors="none", edgecolors=color, marker="D", zorder=3)
    ax.set_yticks(range(len(done)))
    ax.set_yticklabels([" / ".join(str(r[c]) for c in label_columns) for _, r in done.iloc[::-1].iterrows()],
                       fontsize=7)
    ax.set_xlabel("top-1 (%): mean and 95 % interval over seeds (no bar: one seed); hollow diamond: reported", fontsize=8)
    ax.set_title(title + "\nblack square and dashed line: the reference row", fontsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_intervals(frame: pd.DataFrame, label_columns: list[str], title: str, out_prefix: Path) -> list[Path]:
    fig = interval_figure(frame, label_columns, title)
    if fig is None:
        return []
    path = out_prefix.with_name(f"{out_prefix.name}_top1_intervals.png")
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return [path]


def plot_table(frame: pd.DataFrame, label_columns: list[str], title: str, out_prefix: Path,
               params_plot: bool = True) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    done = frame[frame["_top1_mean"].notna()]
    if done.empty:
        return []
    labels = [" / ".join(str(r[c]) for c in label_columns) for _, r in done.iterrows()]
    paths = []
    markers = "os^Dv"
    for x_col, x_label, name in (("_nonzero_params", "non-zero parameters", "params"),
                                 ("_latency_ms", "batch-1 latency (ms)", "latency")):
        if x_col not in done or done[x_col].isna().all() or (name == "params" and not params_plot):
            continue
        fig, ax = plt.subplots(figsize=(9, 4.5))
        for i, (label, (_, r)) in enumerate(zip(labels, done.iterrows())):
            color, marker = plt.cm.tab20.colors[i % 20], markers[(i // 20) % len(markers)]  # distinct up to 100 rows
            ax.errorbar(r[x_col], r["_top1_mean"], yerr=seed_interval(r.get("_top1_values")), color=color,
                        fmt=marker, capsize=2, label=label, zorder=3)
        readable_log_axis(ax)
        ax.set_xlabel(x_label + " (log)")
        ax.set_ylabel("top-1 (%): mean and 95 % interval over seeds", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        path = out_prefix.with_name(f"{out_prefix.name}_accuracy_vs_{name}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_elbow(ks: list[int], inertia: list[float], chosen: int, title: str, path: Path) -> Path:
    """The elbow curve of intraclass k-means (inertia summed over classes), chosen k marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(ks, inertia, "o-")
    ax.axvline(chosen, color="C3", ls="--", label=f"chosen k = {chosen}")
    ax.set_xlabel("k (clusters per class)")
    ax.set_ylabel("within-cluster sum of squares")
    ax.set_title(title, fontsize=9)
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def image_grid(rows: list[tuple[str, "torch.Tensor"]], title: str, path: Path) -> Path:
    """A grid of images in [0, 1] (N x C x H x W per row), one labelled row per entry."""
    plt = _pyplot()
    cols = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.1 * cols + 1, 1.2 * len(rows) + 0.4), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(images):
                ax.axis("off")
                continue
            img = images[c].detach().float().clamp(0, 1).cpu()
            if img.shape[0] == 1:
                ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(img.permute(1, 2, 0).numpy())
        axes[r][0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_training_curves(curves: dict[str, list[list[dict]]], title: str, path: Path) -> Path | None:
    """Train loss and accuracy per epoch, one line per row: the mean over its seeds with a band of ± one sample
    std (`curves`: row label -> per seed, the main stage's history). None when no row has a history."""
    import numpy as np

    curves = {label: [h for h in seeds if h] for label, seeds in curves.items()}
    curves = {label: seeds for label, seeds in curves.items() if seeds}
    if not curves:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, (label, seeds) in enumerate(curves.items()):
        color = plt.cm.tab20.colors[i % 20]
        epochs = min(len(h) for h in seeds)
        x = [seeds[0][e]["epoch"] for e in range(epochs)]
        for ax, field in zip(axes, ("loss", "train_acc")):
            values = np.array([[h[e][field] * (100 if field == "train_acc" else 1) for e in range(epochs)] for h in seeds])
            mean = values.mean(0)
            ax.plot(x, mean, color=color, label=f"{label} (n = {len(seeds)})")
            if len(seeds) > 1:
                std = values.std(0, ddof=1)
                ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.15)
    axes[0].set_ylabel("train loss (all terms), mean ± std over seeds")
    axes[1].set_ylabel("train top-1 (%), augmented batches")
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
