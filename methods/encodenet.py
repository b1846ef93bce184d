"""EncodeNet (Mahmud, Desai, Lama, Prasad, arXiv:2404.13770) as three cached stages after the baseline.

1. `encodenet_targets`: clustering features for every training image (ImageNet VGG16 after its 13th
   convolution, the paper's choice, when its weights are cached; else the trained baseline's penultimate
   embedding, or PCA of raw pixels), intraclass clustering (k-means with k by the elbow method, a fixed
   k, HDBSCAN or cosine similarity) and the lowest-entropy representative of every (class, cluster)
   under the baseline's softmax. Writes `targets.pt`, the elbow curve and a grid of representatives.
2. `encodenet_ae`: the generalized converting autoencoder: encoder = the baseline architecture's
   feature extractor (`model.split(split_at)`), initialized from the trained baseline or from scratch,
   decoder derived from the encoder's output shape; trained with MSE between its output and the clean
   target image (pixels in [0, 1]) while its input is augmented like any training input.
3. `encodenet`: the encoder, frozen (parameters and BatchNorm statistics), topped with the baseline
   architecture's classification layers (from the baseline or fresh), of which only those train, with
   cross-entropy. The result has exactly the baseline's parameter count (checked).

Every choice the paper leaves open is a parameter, part of the cell key, and recorded with the result.
The paper's schedule: baselines 300 epochs, autoencoder 500 (ae_epochs_scale = 5/3 under `paper`);
the head's epochs and every optimizer setting of stages 2-3 are not stated (defaults below are ours).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from suite.autoencoder import ConvertingAutoencoder
from suite.compress import load_shaped
from suite.context import CellContext
from suite.data import DatasetInfo, Normalizer, Split
from suite.plots import image_grid, plot_elbow
from suite.plugins import AT_LEAST_1, Method, NON_NEGATIVE, POSITIVE, register_method
from suite.representatives import (
    CLUSTERINGS,
    Targets,
    baseline_features,
    choose_targets,
    pixel_features,
    resolve_features,
    softmax_entropy,
    vgg16_features,
)
from suite.spec import CellSpec

TARGETS_FILE = "targets.pt"


def _check_choices(params: Any) -> None:
    choices = {"clustering": CLUSTERINGS, "target": ("representative", "input"),
               "encoder_init": ("baseline", "scratch"), "head_init": ("baseline", "scratch")}
    for name, valid in choices.items():
        if hasattr(params, name) and getattr(params, name) not in valid:
            raise ValueError(f"encodenet {name}={getattr(params, name)!r} is not one of {', '.join(valid)}")


# One Params class per stage, each holding only the fields that change that stage's result, so a stage's
# cell key (which hashes its resolved Params) does not move when a later stage gains an option.
@dataclass(frozen=True)
class TargetsParams:
    ranges: ClassVar[dict[str, str]] = {"k": NON_NEGATIVE, "max_k": AT_LEAST_1}
    features: str = "auto"  # auto (vgg16 if its weights are cached, else baseline) | vgg16 | baseline | pixels
    clustering: str = "kmeans"  # kmeans | none (one representative per class) | hdbscan | cosine
    k: int = 0  # clusters per class for kmeans/cosine; 0 = the elbow method over 1..max_k
    max_k: int = 8

    def __post_init__(self) -> None:
        _check_choices(self)


@dataclass(frozen=True)
class AutoencoderParams(TargetsParams):
    ranges: ClassVar[dict[str, str]] = {"split_at": "[-1, inf)", "ae_epochs_scale": NON_NEGATIVE, "ae_lr": POSITIVE}
    targets_model: str = ""  # whose trained baseline scores entropy (and gives features); "" = the cell's model
    target: str = "representative"  # representative (of the image's class and cluster) | input (a plain autoencoder)
    split_at: int = -1  # encoder = stem + stages[:split_at]; -1 = every stage (feature extractor / classifier split)
    encoder_init: str = "baseline"  # baseline (start from the trained baseline's weights) | scratch
    ae_epochs_scale: float = 1.0  # autoencoder epochs = this x the recipe's epochs
    ae_lr: float = 1e-3  # Adam, cosine schedule, no weight decay


@dataclass(frozen=True)
class EncodeNetParams(AutoencoderParams):
    ranges: ClassVar[dict[str, str]] = {"head_epochs_scale": NON_NEGATIVE, "head_lr_scale": POSITIVE}
    head_init: str = "baseline"  # baseline (the trained baseline's classification layers) | scratch
    head_epochs_scale: float = 1 / 3  # head epochs = this x the recipe's epochs
    # The recipe's optimizer at this fraction of its lr: the head meets features that moved under it, and at a
    # from-scratch lr a BN-free head (LeNet-5's) was measured to die at once (all ReLUs zero, 11.35 % on MNIST).
    head_lr_scale: float = 0.1

    @property
    def equal_compute_scale(self) -> float:
        """Epochs of baseline + autoencoder + head, as a multiple of the baseline's."""
        return 1 + self.ae_epochs_scale + self.head_epochs_scale


TARGET_FIELDS = tuple(f.name for f in dataclasses.fields(TargetsParams))
AE_FIELDS = tuple(f.name for f in dataclasses.fields(AutoencoderParams) if f.name not in TARGET_FIELDS)


def stage_params(params: TargetsParams, fields: tuple[str, ...]) -> dict[str, Any]:
    """The non-default values among `fields`: equal stages get equal specs, so they are trained once."""
    defaults = type(params)()
    return {f: getattr(params, f) for f in fields if getattr(params, f) != getattr(defaults, f)}


def split_point(params: AutoencoderParams) -> int | None:
    return None if params.split_at < 0 else params.split_at


def figure_name(spec: CellSpec, kind: str) -> str:
    variant = "".join(f"_{k}-{v}" for k, v in spec.params)
    return f"{kind}_{spec.model}_{spec.dataset}{variant}.png"


class EncodeNetStage(Method):
    PROBE_IMAGES: ClassVar[int] = 2000  # un-augmented training images the reconstruction error is measured on

    def make_params(self, overrides: dict[str, Any]) -> Any:
        params = super().make_params(overrides)
        # `auto` is resolved when the cell is planned, so the key names the features actually used
        return dataclasses.replace(params, features=resolve_features(params.features))

    @staticmethod
    def baseline_spec(spec: CellSpec) -> CellSpec:
        return spec.baseline()


@register_method
class EncodeNetTargets(EncodeNetStage):
    name = "encodenet_targets"
    version = "1"
    Params = TargetsParams
    classifies = False
    saved_file = TARGETS_FILE
    description = "EncodeNet stage 1: intraclass clusters and lowest-entropy representatives (targets.pt)"

    def requires(self, spec, params):
        return {"baseline": self.baseline_spec(spec)}

    def estimated_epochs(self, recipe, params) -> float:
        return 0.3  # forward passes for entropy and features, then k-means

    def run(self, ctx: CellContext) -> None:
        t0 = time.perf_counter()
        p: TargetsParams = ctx.params
        baseline = ctx.deps["baseline"].load_model(ctx.device)
        entropy = softmax_entropy(baseline, ctx.train, ctx.info, ctx.device)
        if p.features == "vgg16":
            feats = vgg16_features(ctx.train, ctx.device)
        elif p.features == "baseline":
            feats = baseline_features(baseline, ctx.train, ctx.info, ctx.device)
        else:
            feats = pixel_features(ctx.train, seed=ctx.spec.seed)
        targets = choose_targets(feats, ctx.train.labels.numpy(), entropy.numpy(), p.clustering, p.k, p.max_k,
                                 ctx.spec.seed)
        torch.save({"targets": targets.state(), "labels": ctx.train.labels}, ctx.artifact_dir / TARGETS_FILE)
        figures = [self.draw_representatives(ctx, targets)]
        if targets.elbow:
            e = targets.elbow
            figures.append(plot_elbow(e["ks"], e["inertia"], e["k"], f"Elbow: {ctx.spec.model} {p.features} features, "
                                      f"{ctx.spec.dataset}", ctx.artifact_dir / figure_name(ctx.spec, "elbow")).name)
        ctx.stages.append({"stage": "targets", "epochs": 0, "epochs_run": 0, "seconds": time.perf_counter() - t0})
        ctx.record(features_used=p.features, feature_dim=int(feats.shape[1]), clustering=p.clustering,
                   k_chosen=targets.elbow["k"] if targets.elbow else p.k, clusters_per_class=targets.clusters_per_class,
                   elbow=targets.elbow, mean_entropy=float(entropy.mean()), figures=figures)
        return None

    @staticmethod
    def draw_representatives(ctx: CellContext, targets: Targets) -> str:
        """EncodeNet Fig. 2: each class's cluster representatives (the first 10 classes)."""
        rows = [(ctx.info.class_name(c), ctx.train.images[targets.representatives_of(ctx.train.labels, c)].float() / 255)
                for c in range(min(10, ctx.info.num_classes))]
        path = ctx.artifact_dir / figure_name(ctx.spec, "representatives")
        image_grid(rows, f"Cluster representatives (lowest entropy):\n{ctx.spec.model} on {ctx.spec.dataset}, "
                   f"{ctx.params.clustering}", path)
        return path.name


def load_targets(ctx: CellContext) -> Targets:
    saved = torch.load(ctx.deps["targets"].artifact_dir / TARGETS_FILE, map_location="cpu", weights_only=False)
    if not torch.equal(saved["labels"], ctx.train.labels):
        raise RuntimeError("targets were computed on a different training split than this cell's")
    return Targets.from_state(saved["targets"])


@register_method
class EncodeNetAutoencoder(EncodeNetStage):
    name = "encodenet_ae"
    version = "1"
    Params = AutoencoderParams
    classifies = False
    description = "EncodeNet stage 2: the converting autoencoder (baseline encoder + derived decoder), MSE to targets"

    def requires(self, spec, params):
        deps = self.targets_dependency(spec, params)
        if params.encoder_init == "baseline":
            deps["baseline"] = self.baseline_spec(spec)
        return deps

    @staticmethod
    def targets_dependency(spec: CellSpec, params: AutoencoderParams) -> dict[str, CellSpec]:
        """The targets stage the autoencoder reconstructs (none when its target is its own input)."""
        if params.target != "representative":
            return {}
        return {"targets": spec.with_(method="encodenet_targets", model=params.targets_model or spec.model,
                                      params=stage_params(params, TARGET_FIELDS))}

    def estimated_epochs(self, recipe, params) -> float:
        return 1.3 * recipe.epochs * params.ae_epochs_scale  # the decoder adds about a third

    def build_model(self, spec: CellSpec, info: DatasetInfo, params: AutoencoderParams) -> ConvertingAutoencoder:
        return self.autoencoder(super().build_model(spec, info, params), params, info)

    @staticmethod
    def autoencoder(model: nn.Module, params: AutoencoderParams, info: DatasetInfo) -> ConvertingAutoencoder:
        encoder, _ = model.split(split_point(params))
        own = getattr(model, "converting_decoder", None)  # CAE-Net's mirrored deconvolutions
        decoder = own() if own is not None and split_point(params) is None else None
        return ConvertingAutoencoder(encoder, (info.in_chans, info.image_size, info.image_size), decoder)

    def run(self, ctx: CellContext) -> ConvertingAutoencoder:
        p: AutoencoderParams = ctx.params
        if p.encoder_init == "baseline":
            ae = self.autoencoder(ctx.deps["baseline"].load_model(ctx.device), p, ctx.info)
        else:
            ae = self.build_model(ctx.spec, ctx.info, p)
        self.fit_and_record(ctx, ae.to(ctx.device), p.ae_epochs_scale, "autoencoder")
        return ae

    @classmethod
    def fit_and_record(cls, ctx: CellContext, ae: ConvertingAutoencoder, epochs_scale: float, stage: str) -> None:
        """Train `ae` to its targets (MSE; Adam, cosine) for `epochs_scale` x the recipe's epochs, then record
        its reconstruction error and a figure of its conversions."""
        p: AutoencoderParams = ctx.params
        norm = Normalizer(ctx.info, ctx.device)
        if p.target == "input":
            train, images = ctx.train, None
        else:  # the label of each image becomes the index of its target image, so batches carry their targets
            train = Split(ctx.train.images, load_targets(ctx).representative)
            images = ctx.train.images.to(ctx.device)

        def target_of(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            return norm.to_unit(x) if images is None else images[index].float() / 255

        def reconstruction(model: nn.Module, x: torch.Tensor, index: torch.Tensor, step):
            return None, {"mse": F.mse_loss(model(x).float(), target_of(x, index))}

        recipe = ctx.recipe.scaled(epochs_scale, optimizer="adam", lr=p.ae_lr, weight_decay=0.0, schedule="cosine")
        result = ctx.fit(ae, losses=reconstruction, recipe=recipe, stage=stage, train=train)
        probe = train.subset(torch.arange(min(cls.PROBE_IMAGES, len(train))))
        mse = cls.reconstruction_error(ae, probe, ctx, target_of)
        ctx.record(recon_mse=mse, recon_mse_train_last_epoch=result.history[-1]["loss"] if result.history else None,
                   decoder_params=sum(q.numel() for q in ae.decoder.parameters()),
                   figures=[cls.draw_conversions(ae, probe, ctx, target_of)])

    @staticmethod
    @torch.no_grad()
    def reconstruction_error(ae: nn.Module, probe: Split, ctx: CellContext, target_of) -> float:
        """MSE (pixels in [0, 1]) on un-augmented training images, autoencoder in eval mode."""
        from suite.data import iterate_batches

        ae.eval()
        total = 0.0
        for x, index in iterate_batches(probe.to(ctx.device), ctx.info, 500, shuffle=False, augment=False):
            total += F.mse_loss(ae(x).float(), target_of(x, index), reduction="sum").item() / x[0].numel()
        return total / len(probe)

    @staticmethod
    @torch.no_grad()
    def draw_conversions(ae: nn.Module, probe: Split, ctx: CellContext, target_of) -> str:
        """EncodeNet Fig. 5: inputs, autoencoder outputs and their targets (one image per class, first 10)."""
        from suite.data import iterate_batches

        labels = ctx.train.labels[:len(probe)]
        picks = [int(torch.nonzero(labels == c)[0]) for c in range(min(10, ctx.info.num_classes)) if (labels == c).any()]
        x, index = next(iterate_batches(probe.subset(picks).to(ctx.device), ctx.info, len(picks), shuffle=False,
                                        augment=False))
        ae.eval()
        norm = Normalizer(ctx.info, ctx.device)
        path = ctx.artifact_dir / figure_name(ctx.spec, "conversions")
        image_grid([("input", norm.to_unit(x)), ("output", ae(x)), ("target", target_of(x, index))],
                   f"Converting autoencoder: {ctx.spec.model} on {ctx.spec.dataset}", path)
        return path.name


@register_method
class EncodeNet(EncodeNetStage):
    name = "encodenet"
    version = "1"
    family = "training"
    Params = EncodeNetParams
    description = "EncodeNet: frozen converting-autoencoder encoder + the baseline's classification layers"
    keeps_baseline_params = True  # the composite has exactly the baseline's parameters (checked)

    def requires(self, spec, params):
        deps = {"autoencoder": self.autoencoder_spec(spec, params)}
        if params.head_init == "baseline":
            deps["baseline"] = self.baseline_spec(spec)
        return deps

    @staticmethod
    def autoencoder_spec(spec: CellSpec, params: AutoencoderParams) -> CellSpec:
        """The trained converting autoencoder whose encoder this cell freezes."""
        fields = AE_FIELDS + (TARGET_FIELDS if params.target == "representative" else ())
        return spec.with_(method="encodenet_ae", params=stage_params(params, fields))

    def estimated_epochs(self, recipe, params) -> float:
        return recipe.epochs * params.head_epochs_scale / 3  # the frozen encoder runs forward only

    def run(self, ctx: CellContext) -> nn.Module:
        p: EncodeNetParams = ctx.params
        model = ctx.deps["baseline"].load_model(ctx.device) if p.head_init == "baseline" else \
            self.build_model(ctx.spec, ctx.info, p).to(ctx.device)
        encoder, classifier = model.split(split_point(p))
        state = ctx.deps["autoencoder"].load_model(ctx.device).encoder.state_dict()
        load_shaped(encoder, state)  # a pruned autoencoder's encoder is narrower

        def head_loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor, step):
            with torch.no_grad():  # the frozen encoder needs no graph
                features = encoder(x)
            logits = classifier(features)
            return logits, {"ce": F.cross_entropy(logits, y)}

        ctx.fit(model, losses=head_loss, params=classifier.parameters(), frozen=encoder,
                recipe=ctx.recipe.scaled(p.head_epochs_scale, lr=ctx.recipe.lr * p.head_lr_scale), stage="head")
        expected = sum(q.numel() for q in self.build_model(ctx.spec, ctx.info, p).parameters())
        equal = sum(q.numel() for q in model.parameters()) == expected
        if self.keeps_baseline_params and not equal:
            raise RuntimeError("EncodeNet model's parameter count differs from the baseline's")
        ctx.record(recon_mse=ctx.deps["autoencoder"].metrics.get("recon_mse"), params_equal_baseline=equal,
                   equal_compute_scale=p.equal_compute_scale)
        return model
