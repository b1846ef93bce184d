"""Why does the ablation's "AE target = input" row classify so poorly? Linear probes of its frozen encoder.

The row freezes the encoder of an autoencoder trained to reconstruct its input and trains the baseline's
classification layers on it (for ResNet20: global average pooling + one linear layer). This script takes that
row's trained cells from a store (run the table first:
`python run_all.py --table ablation --only target=input --precision bf16`), computes the frozen encoder's
features once (un-augmented, eval mode) and fits linear classifiers on them, to separate three explanations:

1. BatchNorm statistics: the same pooled probe with the encoder's BN statistics re-estimated on the images.
2. The head's optimisation: a well-conditioned probe (standardised features, Adam, 30 epochs) against the same
   probe on the raw channel means the table's head sees.
3. The head's pooling: a linear probe on the unpooled 64 x 8 x 8 map instead of its 64 channel means.
4. The objective itself: the same probes on the trained baseline's encoder (before autoencoder training).

    python benchmarks/probe_frozen_encoder.py [--store runs/store.sqlite] [--out results/cpu/ablation_probe.md]

Prints a Markdown table; with --out writes it, and the figures with their settings as JSON beside it.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from suite.cli import build_parser, make_runner, plan_table, table_options
from suite.data import iterate_batches, load_dataset, stratified_subset
from suite.execute import dependency


@torch.no_grad()
def reestimate_batchnorm(encoder: nn.Module, split, info) -> nn.Module:
    """A copy of `encoder` whose BatchNorm statistics are recomputed on `split` (one pass, cumulative average)."""
    encoder = copy.deepcopy(encoder)
    for m in encoder.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    encoder.train()
    for x, _ in iterate_batches(split, info, 256, shuffle=True, augment=False, generator=torch.Generator().manual_seed(0)):
        encoder(x)
    return encoder.eval()


@torch.no_grad()
def features(encoder: nn.Module, split, info) -> torch.Tensor:
    encoder.eval()
    return torch.cat([encoder(x).float() for x, _ in iterate_batches(split, info, 256, shuffle=False, augment=False)])


def fit_linear(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
               epochs: int, standardise: bool = True, seed: int = 0) -> float:
    """Multinomial logistic regression (Adam; inputs standardised by the training features' mean and std, or
    raw); test top-1 %."""
    torch.manual_seed(seed)
    if standardise:
        mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
        train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    head = nn.Linear(train_x.shape[1], int(train_y.max()) + 1)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(epochs):
        for idx in torch.randperm(len(train_x)).split(256):
            opt.zero_grad()
            F.cross_entropy(head(train_x[idx]), train_y[idx]).backward()
            opt.step()
    with torch.no_grad():
        return 100.0 * float((head(test_x).argmax(1) == test_y).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=Path("runs/store.sqlite"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    cli_args = build_parser().parse_args(["--table", "ablation", "--precision", "bf16", "--store", str(args.store),
                                          "--quiet"])
    tables, opts = table_options(cli_args)
    runner, _ = make_runner(cli_args)
    plan = plan_table(runner, tables[0], opts)
    (cell,) = [c for cs in plan.row_cells for c in cs if c.spec.method == "encodenet" and
               dict(c.spec.params).get("target") == "input"]
    row = runner.store.get(cell.key)
    if row is None or row["status"] != "done" or not all(runner.store.get(d.key) for d in cell.deps.values()):
        raise SystemExit("train the row first: python run_all.py --table ablation --only target=input --precision bf16")
    deps = {role: dependency(d, runner.config, runner.store.get(d.key)["metrics"]) for role, d in cell.deps.items()}
    data = load_dataset(cell.spec.dataset, runner.data_dir)
    train = stratified_subset(data.train, cell.recipe.train_subset)
    test, info = data.test, data.info
    encoders = {"autoencoder (target = input)": deps["autoencoder"].load_model().encoder,
                "baseline (no autoencoder)": deps["baseline"].load_model().split()[0]}
    results, t0 = [], time.perf_counter()
    probes = [("pooled (the table's head: channel means), standardised", True, True),
              ("pooled, raw (as the table's head sees them)", True, False),
              ("unpooled 64 x 8 x 8 map, standardised", False, True)]
    for name, encoder in encoders.items():
        for bn in ("stored (eval mode, as the table)", "re-estimated on the training images"):
            frozen = encoder if bn.startswith("stored") else reestimate_batchnorm(encoder, train, info)
            f_train, f_test = features(frozen, train, info), features(frozen, test, info)
            for head, pool, standardise in probes:
                if not bn.startswith("stored") and not (pool and standardise):
                    continue  # the BatchNorm question needs one probe
                x_train = f_train.mean((2, 3)) if pool else f_train.flatten(1)
                x_test = f_test.mean((2, 3)) if pool else f_test.flatten(1)
                top1 = fit_linear(x_train, train.labels, x_test, test.labels, args.epochs, standardise)
                results.append({"encoder": name, "bn": bn, "probe": head, "features": int(x_train.shape[1]),
                                "top1": round(top1, 2)})
                print(f"| {name} | {bn} | {head} | {results[-1]['features']} | {top1:.2f} |", flush=True)
    record = {"cell": cell.label, "cell_key": cell.key, "table_top1": row["metrics"].get("top1"),
              "deps": {r: d.key for r, d in cell.deps.items()}, "train_images": len(train), "test_images": len(test),
              "probe": f"logistic regression on frozen, un-augmented features (standardised unless the row says raw), Adam 1e-3, wd 1e-4, "
                       f"batch 256, {args.epochs} epochs, seed 0",
              "seconds": round(time.perf_counter() - t0, 1), "torch": torch.__version__,
              "device": f"{platform.machine()} CPU, {torch.get_num_threads()} threads", "precision_trained": cell.precision,
              "dataset_fingerprint": data.fingerprint, "results": results}
    print(f"(the table's row: {record['table_top1']:.2f} % with its head trained by the recipe on augmented images)")
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
        lines = [f"# Linear probes of the ablation's frozen encoders (`{cell.label}`)", "",
                 f"Made by `python benchmarks/probe_frozen_encoder.py --out {args.out}` from the stored cells "
                 f"{', '.join(f'{r} {k[:10]}' for r, k in record['deps'].items())} and {cell.key[:10]} (the row, "
                 f"{record['table_top1']:.2f} % top-1); {len(train)} training and {len(test)} test images of "
                 f"{cell.spec.dataset} (fingerprint {data.fingerprint}{'' if data.canonical else ', NOT canonical'}); the cells "
                 f"trained in {cell.precision}, features computed in fp32 on {record['device']}; probe: "
                 f"{record['probe']}; torch {torch.__version__}. Settings and figures: "
                 f"[{args.out.with_suffix('.json').name}]({args.out.with_suffix('.json').name}).", "",
                 "| Encoder | BatchNorm | Probe | Features | Top-1 % |", "|:--|:--|:--|--:|--:|"]
        lines += [f"| {r['encoder']} | {r['bn']} | {r['probe']} | {r['features']} | {r['top1']:.2f} |" for r in results]
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
