"""Plots beside each table: top-1 against parameters and against batch-1 latency, one point per row;
a reported figure is drawn as a hollow marker at the same x, so the gap to the paper is visible."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    import torch


def plot_table(frame: pd.DataFrame, label_columns: list[str], title: str, out_prefix: Path) -> list[Path]:
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
        if x_col not in done or done[x_col].isna().all():
            continue
        fig, ax = plt.subplots(figsize=(9, 4.5))
        for i, (label, (_, r)) in enumerate(zip(labels, done.iterrows())):
            color, marker = f"C{i % 10}", markers[(i // 10) % len(markers)]  # distinct for up to 50 rows
            ax.scatter(r[x_col], r["_top1_mean"], color=color, marker=marker, label=label, zorder=3)
            if pd.notna(r.get("_reported")):
                ax.scatter(r[x_col], r["_reported"], facecolors="none", edgecolors=color, marker=marker, zorder=3)
        ax.set_xscale("log")
        ax.set_xlabel(x_label)
        ax.set_ylabel("top-1 (%)")
        ax.set_title(f"{title}\nfilled: ours, hollow: reported", fontsize=9)
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
