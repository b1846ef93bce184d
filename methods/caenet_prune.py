"""CAE-Net's pruning step (Mahmud et al., CAE-Net, Sec. III-A) as two stages after EncodeNet's autoencoder.

1. `caenet_prune`: the trained converting autoencoder is pruned -- connection (weight) pruning, then
   structural (channel) pruning -- until the composite classifier built on its encoder meets a latency
   target, then fine-tuned to its targets again.
2. `encodenet_pruned`: the classification layers trained on the frozen, pruned encoder, as `encodenet`
   does on the unpruned one (CAE-Net's edge rows "CAE-Net" vs "CAE-Net, pruned").

The paper gives the order (weight pruning, then structural pruning) and the goal (meet the latency SLO of
the edge device), not the ratios, the criterion or the fine-tuning. Ours, every one a parameter in the key:
- connection pruning: global magnitude pruning of the encoder's convolutions to `sparsity` zeros;
- structural pruning: Torch-Pruning's L2 channel pruning of every encoder convolution but the last (its
  width is the classification layers' input), at channel ratios `ratio_step`, 2 x `ratio_step`, ... up to
  `max_ratio`; the first ratio whose composite meets the target is kept;
- fine-tuning: the autoencoder's own objective (MSE to its targets, Adam, cosine) for `finetune_fraction`
  of its training epochs, the zeros of connection pruning held.
The target is a batch-1 latency: `target_ms` when given, else the unpruned composite's latency divided by
`target_speedup`, both timed here, back to back, in the cell's precision -- this machine is not the paper's
Raspberry Pi, so the paper's absolute SLO would not transfer. Where no ratio meets it, the largest is kept
and the record says why (the latency and FLOPs left at that ratio).
"""
from __future__ import annotations

import copy
import dataclasses
import json
from typing import ClassVar
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import prune

from methods.encodenet import (
    AE_FIELDS,
    TARGET_FIELDS,
    AutoencoderParams,
    EncodeNet,
    EncodeNetAutoencoder,
    EncodeNetParams,
    split_point,
    stage_params,
)
from methods.prune import bake_masks, prune_to
from suite.autoencoder import ConvertingAutoencoder
from suite.columns import MetricColumn
from suite.compress import compressible_layers, load_shaped, weight_sparsity
from suite.context import CellContext
from suite.measure import batch1_latency, count_flops
from suite.plugins import Method, NON_NEGATIVE, POSITIVE, register_method
from suite.spec import CellSpec

SEARCH_FILE = "structural_search.json"  # the chosen ratio, so a resumed cell fine-tunes the same architecture


@dataclass(frozen=True)
class AutoencoderPruneParams(AutoencoderParams):
    ranges: ClassVar[dict[str, str]] = {"sparsity": "[0, 1)", "target_speedup": POSITIVE, "target_ms": NON_NEGATIVE, "ratio_step": "(0, 1)", "max_ratio": "(0, 1)", "finetune_fraction": NON_NEGATIVE}
    sparsity: float = 0.5  # connection pruning: fraction of the encoder's convolution weights set to zero
    target_speedup: float = 2.0  # batch-1 latency target: the unpruned composite's / this (when target_ms = 0)
    target_ms: float = 0.0  # an absolute batch-1 latency target on the machine that runs the cell (0 = off)
    ratio_step: float = 0.1
    max_ratio: float = 0.9  # the largest fraction of channels removed from each pruned convolution
    finetune_fraction: float = 0.5  # autoencoder fine-tuning epochs, as a fraction of its training epochs

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ratio_step > self.max_ratio:
            raise ValueError(f"caenet_prune: ratio_step ({self.ratio_step}) must not exceed max_ratio ({self.max_ratio})")


@dataclass(frozen=True)
class PrunedEncodeNetParams(EncodeNetParams, AutoencoderPruneParams):
    """EncodeNet's head stage on the pruned autoencoder: every field of both."""


PRUNE_FIELDS = tuple(f.name for f in dataclasses.fields(AutoencoderPruneParams)
                     if f.name not in AE_FIELDS + TARGET_FIELDS)


def channel_prune_encoder(ae: ConvertingAutoencoder, ratio: float, example: torch.Tensor) -> ConvertingAutoencoder:
    """A copy of `ae` with `ratio` of the channels of every encoder convolution but the last removed (L2)."""
    import torch_pruning as tp

    pruned = copy.deepcopy(ae).eval()
    convs = [m for m in pruned.encoder.modules() if isinstance(m, nn.Conv2d)]
    pruner = tp.pruner.MagnitudePruner(pruned, example, importance=tp.importance.MagnitudeImportance(p=2),
                                       pruning_ratio=ratio, ignored_layers=[convs[-1], pruned.decoder])
    pruner.step()
    return pruned


def _pruned_encoder(m: dict) -> str:
    return (f"{m['encoder_sparsity']:.0%} zeros, {m['structural_ratio']:.0%} of channels removed; "
            f"target {m['latency_target_ms']:.2f} ms " + ("met" if m["target_met"] else "not met"))


PRUNED_ENCODER = MetricColumn("Pruned encoder", "structural_ratio", show=_pruned_encoder)


@register_method
class CAENetPruning(EncodeNetAutoencoder):
    name = "caenet_prune"
    columns = (PRUNED_ENCODER,)
    version = "1"
    Params = AutoencoderPruneParams
    classifies = False
    description = ("CAE-Net's pruning step: the converting autoencoder's encoder connection-pruned, then "
                   "channel-pruned until its composite classifier meets a batch-1 latency target, then fine-tuned")

    def requires(self, spec, params):
        # fine-tuning reconstructs the same targets the autoencoder was trained to
        return {"autoencoder": EncodeNet.autoencoder_spec(spec, params), **self.targets_dependency(spec, params)}

    def estimated_epochs(self, recipe, params) -> float:
        return 1.3 * recipe.epochs * params.ae_epochs_scale * params.finetune_fraction

    def restore(self, spec, info, params, state):
        return load_shaped(self.build_model(spec, info, params), state)  # the pruned widths follow from the weights

    def composite(self, ctx: CellContext, encoder: nn.Module) -> nn.Module:
        """The classifier CAE-Net deploys: `encoder` (a copy) + the model's classification layers."""
        _, head = Method.build_model(self, ctx.spec, ctx.info, ctx.params).split(split_point(ctx.params))
        return nn.Sequential(copy.deepcopy(encoder), head).to(ctx.device)

    def search(self, ctx: CellContext, ae: ConvertingAutoencoder) -> dict:
        """Time the composite at ratio 0, step, 2 x step, ... and keep the first that meets the target."""
        p: AutoencoderPruneParams = ctx.params
        shape = (ctx.info.in_chans, ctx.info.image_size, ctx.info.image_size)
        example = torch.zeros(1, *shape, device=ctx.device)

        def probe(ratio: float) -> dict:
            candidate = channel_prune_encoder(ae, ratio, example) if ratio else ae
            model = self.composite(ctx, candidate.encoder)
            timing = batch1_latency(model, shape, ctx.device, ctx.precision, runs=60)
            return {"ratio": ratio, "latency_ms": timing["latency_ms"], "flops": count_flops(model, example),
                    "encoder_params": sum(q.numel() for q in candidate.encoder.parameters())}

        trace = [probe(0.0)]
        target = p.target_ms or trace[0]["latency_ms"] / p.target_speedup
        steps = round(p.max_ratio / p.ratio_step)
        while trace[-1]["latency_ms"] > target and len(trace) <= steps:
            trace.append(probe(round(len(trace) * p.ratio_step, 6)))
        chosen = trace[-1]
        met = chosen["latency_ms"] <= target
        reason = "" if met else (
            f"no channel ratio up to {p.max_ratio:g} met {target:.3f} ms: at {chosen['ratio']:g} the composite takes "
            f"{chosen['latency_ms']:.3f} ms ({trace[0]['latency_ms'] / chosen['latency_ms']:.2f}x faster) with "
            f"{chosen['flops'] / trace[0]['flops']:.1%} of its FLOPs left; the time left is in the unpruned last "
            "convolution, the classification layers and per-call overhead")
        return {"target_ms": target, "ratio": chosen["ratio"], "target_met": met, "reason": reason, "trace": trace}

    def run(self, ctx: CellContext) -> ConvertingAutoencoder:
        p: AutoencoderPruneParams = ctx.params
        ae = ctx.deps["autoencoder"].load_model(ctx.device)
        params_before = sum(q.numel() for q in ae.encoder.parameters())
        prune_to(ae.encoder, p.sparsity, "global", "magnitude")
        bake_masks(ae.encoder)  # plain weights with zeros, which Torch-Pruning can handle
        saved = ctx.artifact_dir / SEARCH_FILE
        if saved.exists():
            search = json.loads(saved.read_text())
        else:
            search = self.search(ctx, ae)
            saved.write_text(json.dumps(search))
        if search["ratio"]:
            example = torch.zeros(1, ctx.info.in_chans, ctx.info.image_size, ctx.info.image_size, device=ctx.device)
            ae = channel_prune_encoder(ae, search["ratio"], example)
        for _, m in compressible_layers(ae.encoder):  # hold the connection-pruning zeros while fine-tuning
            prune.custom_from_mask(m, "weight", (m.weight != 0).to(m.weight.dtype))
        self.fit_and_record(ctx, ae, p.ae_epochs_scale * p.finetune_fraction, "finetune")
        bake_masks(ae.encoder)
        ctx.record(encoder_sparsity=weight_sparsity(ae.encoder), structural_ratio=search["ratio"],
                   latency_target_ms=search["target_ms"], target_met=search["target_met"],
                   target_reason=search["reason"], latency_search=search["trace"],
                   encoder_params_before=params_before,
                   encoder_params_after=sum(q.numel() for q in ae.encoder.parameters()))
        return ae


@register_method
class PrunedEncodeNet(EncodeNet):
    name = "encodenet_pruned"
    columns = (PRUNED_ENCODER,)
    version = "1"
    family = "training"
    Params = PrunedEncodeNetParams
    label = "CAE-Net/EncodeNet, pruned autoencoder"
    description = "EncodeNet/CAE-Net on the pruned autoencoder of `caenet_prune` (frozen encoder + classification layers)"
    keeps_baseline_params = False  # the encoder is narrower than the baseline's

    @staticmethod
    def autoencoder_spec(spec: CellSpec, params: PrunedEncodeNetParams) -> CellSpec:
        fields = AE_FIELDS + PRUNE_FIELDS + (TARGET_FIELDS if params.target == "representative" else ())
        return spec.with_(method="caenet_prune", params=stage_params(params, fields))

    def restore(self, spec, info, params, state):
        return load_shaped(self.build_model(spec, info, params), state)

    def run(self, ctx: CellContext) -> nn.Module:
        model = super().run(ctx)
        pruning = ctx.deps["autoencoder"].metrics
        ctx.record(**{k: pruning.get(k) for k in ("structural_ratio", "latency_target_ms", "target_met",
                                                   "target_reason", "encoder_sparsity", "encoder_params_before",
                                                   "encoder_params_after")})
        return model
