"""Plots beside each table: top-1 against parameters and against batch-1 latency, one point per row;
a reported figure is drawn as a hollow marker at the same x, so the gap to the paper is visible."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


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
