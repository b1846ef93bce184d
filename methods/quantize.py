"""Int8 quantization on CPU with torch.ao.quantization, starting from the trained baseline.

- `mode="dynamic"`: post-training dynamic quantization of the linear layers (weights int8,
  activations quantized on the fly).
- `mode="static"`: post-training static quantization with FX graph mode: observers calibrated on
  `calibration_images` training images, then conversion to int8 kernels (x86 / fbgemm backend).
- `mode="qat"`: quantization-aware training: FX fake-quant modules fine-tuned through the harness,
  then converted.
Why torch.ao: on the installed torch (2.15) its eager/FX flows still work on CPU, while the pt2e flow
now lives in torchao (not a dependency here); torch.ao warns that it is deprecated, and those warnings
are silenced here. Int8 models run on the CPU only, so this plugin is evaluated and measured there.
The reported size is that of the saved int8 state dict.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from suite.compress import baseline_dependency, finetune_recipe, quantized_parameter_count
from suite.data import iterate_batches
from suite.plugins import Method, register_method


@dataclass(frozen=True)
class QuantizeParams:
    mode: str = "static"  # "dynamic", "static" or "qat"
    backend: str = "x86"
    calibration_images: int = 2048
    qat_fraction: float = 0.3  # QAT fine-tuning epochs as a fraction of the recipe's
    qat_lr_scale: float = 0.1

    def __post_init__(self) -> None:
        if self.mode not in {"dynamic", "static", "qat"}:
            raise ValueError(f"quantize: mode must be dynamic|static|qat, got {self.mode!r}")


def int8_model(model: nn.Module, p: QuantizeParams, info, prepared_hook=None) -> nn.Module:
    """`model` converted to int8 by the mode's torch.ao flow. `prepared_hook(prepared)` runs between preparing
    and converting (calibration, QAT); without it the int8 structure is built with default observers, which
    is enough to load a saved int8 state dict into."""
    from torch.ao.quantization import get_default_qat_qconfig_mapping, get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx, prepare_qat_fx

    torch.backends.quantized.engine = p.backend if p.backend in torch.backends.quantized.supported_engines else "fbgemm"
    example = (torch.zeros(1, info.in_chans, info.image_size, info.image_size),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices and observers that saw no data
        if p.mode == "dynamic":
            return torch.ao.quantization.quantize_dynamic(model.cpu().eval(), {nn.Linear}, dtype=torch.qint8)
        if p.mode == "static":
            prepared = prepare_fx(model.cpu().eval(), get_default_qconfig_mapping(p.backend), example)
        else:
            prepared = prepare_qat_fx(model.cpu().train(), get_default_qat_qconfig_mapping(p.backend), example)
        if prepared_hook is not None:
            prepared = prepared_hook(prepared)
        return convert_fx(prepared.cpu().eval())


@register_method
class Quantization(Method):
    name = "quantize"
    version = "1"
    family = "compression"
    Params = QuantizeParams
    description = "int8 quantization: dynamic, static (FX, calibrated) or quantization-aware training"
    inference_device = "cpu"
    inference_precision = "fp32"  # int8 kernels: measured as deployed, never under autocast

    def requires(self, spec, params):
        return baseline_dependency(spec)

    def run(self, ctx):
        p = ctx.params

        def calibrate(prepared: nn.Module) -> nn.Module:
            calibration = ctx.train.subset(torch.arange(min(p.calibration_images, len(ctx.train))))
            with torch.no_grad():
                for x, _ in iterate_batches(calibration, ctx.info, 256, shuffle=False, augment=False):
                    prepared(x)
            return prepared

        def train_aware(prepared: nn.Module) -> nn.Module:
            # fake quantization is defined on fp32 tensors: QAT trains in fp32 whatever the cell's precision
            ctx.fit(prepared, recipe=finetune_recipe(ctx.recipe, p.qat_fraction, p.qat_lr_scale), stage="qat",
                    precision="fp32")
            return prepared

        hook = {"dynamic": None, "static": calibrate, "qat": train_aware}[p.mode]
        return int8_model(ctx.deps["baseline"].load_model("cpu"), p, ctx.info, hook)

    def measure(self, ctx, model, metrics):
        n = quantized_parameter_count(model)
        return {"params": n, "nonzero_params": n, "trainable_params": 0, "size_format": "torch.save(int8 state_dict)"}

    def build_model(self, spec, info, params):
        """The int8 architecture (weights still to be loaded) of the mode's flow."""
        return int8_model(super().build_model(spec, info, params), params, info)
