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


@register_method
class Quantization(Method):
    name = "quantize"
    version = "1"
    Params = QuantizeParams
    description = "int8 quantization: dynamic, static (FX, calibrated) or quantization-aware training"
    inference_device = "cpu"
    inference_precision = "fp32"  # int8 kernels: measured as deployed, never under autocast

    def requires(self, spec, params):
        if params.mode not in {"dynamic", "static", "qat"}:
            raise ValueError(f"quantize: mode must be dynamic|static|qat, got {params.mode!r}")
        return baseline_dependency(spec)

    def run(self, ctx):
        from torch.ao.quantization import get_default_qat_qconfig_mapping, get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx, prepare_qat_fx

        p = ctx.params
        torch.backends.quantized.engine = p.backend if p.backend in torch.backends.quantized.supported_engines else "fbgemm"
        model = ctx.deps["baseline"].load_model("cpu")
        example = (torch.zeros(1, ctx.info.in_chans, ctx.info.image_size, ctx.info.image_size),)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao's deprecation notices, once per call
            if p.mode == "dynamic":
                return torch.ao.quantization.quantize_dynamic(model.eval(), {nn.Linear}, dtype=torch.qint8)
            if p.mode == "static":
                prepared = prepare_fx(model.eval(), get_default_qconfig_mapping(p.backend), example)
                calibration = ctx.train.subset(torch.arange(min(p.calibration_images, len(ctx.train))))
                with torch.no_grad():
                    for x, _ in iterate_batches(calibration, ctx.info, 256, shuffle=False, augment=False):
                        prepared(x)
                return convert_fx(prepared)
            prepared = prepare_qat_fx(model.train(), get_default_qat_qconfig_mapping(p.backend), example)
            # fake quantization is defined on fp32 tensors: QAT trains in fp32 whatever the cell's precision
            ctx.fit(prepared, recipe=finetune_recipe(ctx.recipe, p.qat_fraction, p.qat_lr_scale), stage="qat",
                    precision="fp32")
            return convert_fx(prepared.cpu().eval())

    def measure(self, ctx, model, metrics):
        n = quantized_parameter_count(model)
        return {"params": n, "nonzero_params": n, "trainable_params": 0, "size_format": "torch.save(int8 state_dict)"}

    def build_model(self, spec, info):
        raise NotImplementedError("an int8 model cannot be rebuilt from its spec; load it from its cell")
