"""Int8 quantization on CPU with torch.ao.quantization, starting from the trained baseline.

- `mode="dynamic"`: post-training dynamic quantization of the linear layers (weights int8,
  activations quantized on the fly).
- `mode="static"`: post-training static quantization with FX graph mode: observers calibrated on
  `calibration_images` training images, then conversion to int8 kernels (x86 / fbgemm backend).
- `mode="qat"`: quantization-aware training: FX fake-quant modules fine-tuned through the harness,
  then converted.

Two flows for `static` (`flow`, resolved when the cell is planned, so the key names the flow that ran):
- `pt2e` (torchao, the successor of torch.ao's FX flow, deprecated in torch 2.15): `torch.export` with a
  dynamic batch, `prepare_pt2e` with torchao's X86InductorQuantizer (per-channel int8 weights, int8
  activations), calibration, `convert_pt2e`; the int8 graph is then run through inductor with freezing,
  which folds the int8 weights into oneDNN int8 kernels -- how torchao deploys it on x86. Uncompiled, the
  graph runs reference dequantize-op-quantize code, measured 1.5x *slower* than fp32 on ResNet20.
- `fx` (torch.ao's FX graph mode, fbgemm/x86 kernels): the fallback when torchao is not installed, when
  export fails on a model (the record says why), and the flow of `qat` and `dynamic` here.
torch.ao warns that it is deprecated; those warnings are silenced. Int8 models run on the CPU only, so
this plugin is evaluated and measured there. The reported size is that of the saved int8 state dict.
"""
from __future__ import annotations

import dataclasses
import io
import warnings
from typing import ClassVar
from dataclasses import dataclass

import torch
from torch import nn

from suite.columns import MetricColumn
from suite.compress import CompressionMethod, finetune_recipe, quantized_parameter_count
from suite.data import iterate_batches
from suite.plugins import AT_LEAST_1, NON_NEGATIVE, POSITIVE, register_method

PT2E_FLOW = "pt2e (torchao X86InductorQuantizer, inductor-compiled)"
FX_FLOW = "torch.ao FX (x86/fbgemm)"


@dataclass(frozen=True)
class QuantizeParams:
    ranges: ClassVar[dict[str, str]] = {"calibration_images": AT_LEAST_1, "qat_fraction": NON_NEGATIVE, "qat_lr_scale": POSITIVE}
    mode: str = "static"  # "dynamic", "static" or "qat"
    flow: str = "auto"  # static only: pt2e (torchao) | fx (torch.ao); auto = pt2e when torchao is installed
    backend: str = "x86"
    calibration_images: int = 2048
    qat_fraction: float = 0.3  # QAT fine-tuning epochs as a fraction of the recipe's
    qat_lr_scale: float = 0.1

    def __post_init__(self) -> None:
        if self.mode not in {"dynamic", "static", "qat"}:
            raise ValueError(f"quantize: mode must be dynamic|static|qat, got {self.mode!r}")
        if self.flow not in {"auto", "pt2e", "fx"} or (self.flow == "pt2e" and self.mode != "static"):
            raise ValueError(f"quantize: flow must be auto|pt2e|fx (pt2e with mode=static only), got {self.flow!r}")


def resolve_flow(p: QuantizeParams) -> str:
    if p.flow != "auto":
        return p.flow
    if p.mode != "static":
        return "fx"
    try:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401
    except Exception:  # not installed, or a torchao that does not match the installed torch
        return "fx"
    return "pt2e"


class InductorInt8(nn.Module):
    """A pt2e int8 graph run through inductor with freezing (compiled on the first call of each batch size).

    Its state dict is one uint8 buffer, `program`: the graph saved by `torch.export.save`. The activation
    scales of a pt2e graph are constants in its code, not tensors, so a state dict of weights alone could
    not rebuild it; the program holds both (its int8 weights, scales, zero points, fp32 biases and code)."""

    def __init__(self, graph: nn.Module, program: torch.Tensor | None = None) -> None:
        super().__init__()
        object.__setattr__(self, "graph", graph)  # unregistered: the program, not the graph's tensors, is saved
        self.register_buffer("program", program if program is not None else save_program(graph))
        self._compiled = None

    @classmethod
    def from_program(cls, program: torch.Tensor) -> "InductorInt8":
        loaded = torch.export.load(io.BytesIO(program.cpu().numpy().tobytes())).module()
        return cls(loaded, program)

    def train(self, mode: bool = True) -> "InductorInt8":
        self.training = mode  # the exported graph stays in its eval form (torch.export forbids train()/eval())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch._inductor.config as inductor_config

        if self._compiled is None:
            # static shapes (one compilation per batch size): the int8 conv lowering fails on symbolic shapes
            object.__setattr__(self, "_compiled", torch.compile(self.graph, dynamic=False))
        # freezing (folding the int8 weights into prepacked oneDNN kernels) is read when a shape compiles; set
        # per call, not globally, and the compile option of the same name fails on the prepack op (torch 2.14)
        with torch.no_grad(), inductor_config.patch(freezing=True):
            return self._compiled(x)


def export_any_batch(module: nn.Module, image_shape: tuple[int, ...]) -> torch.export.ExportedProgram:
    """`module` captured by torch.export for images of `image_shape`, the batch dimension left dynamic (traced
    at 2: a batch of 1 would be specialised)."""
    return torch.export.export(module, (torch.zeros(2, *image_shape),),
                               dynamic_shapes=({0: torch.export.Dim("batch")},))


def save_program(graph: nn.Module) -> torch.Tensor:
    """`graph` exported again and saved by torch.export, as a uint8 tensor."""
    example = next(n for n in graph.graph.nodes if n.op == "placeholder").meta["val"]
    buffer = io.BytesIO()
    torch.export.save(export_any_batch(graph, tuple(example.shape[1:])), buffer)
    return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)


def drop_unused_attributes(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Remove the fp32 weights convert_pt2e leaves behind beside their int8 copies (they would double the size)."""
    used = {n.target for n in graph.graph.nodes if n.op == "get_attr"}
    for name in [n for n, _ in graph.named_parameters()] + [n for n, _ in graph.named_buffers()]:
        if name not in used:
            owner, _, attr = name.rpartition(".")
            delattr(graph.get_submodule(owner) if owner else graph, attr)
    return graph


def pt2e_int8_model(model: nn.Module, info, prepared_hook=None) -> InductorInt8:
    """`model` quantized by torchao's pt2e flow with the X86 inductor quantizer (see the module docstring)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # observers that saw no data (a structure to load a state dict into)
        exported = export_any_batch(model.cpu().eval(), (info.in_chans, info.image_size, info.image_size)).module()
        quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(exported, quantizer)
        if prepared_hook is not None:
            prepared = prepared_hook(prepared)
        return InductorInt8(drop_unused_attributes(convert_pt2e(prepared)))


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
class Quantization(CompressionMethod):
    name = "quantize"
    columns = (MetricColumn("Int8 flow", "int8_flow"),)  # which flow made the int8 model (recorded in run)
    version = "1"
    family = "compression"
    Params = QuantizeParams
    description = "int8 quantization: dynamic, static (FX, calibrated) or quantization-aware training"
    inference_device = "cpu"
    inference_precision = "fp32"  # int8 kernels: measured as deployed, never under autocast

    def make_params(self, overrides):
        params = super().make_params(overrides)
        return dataclasses.replace(params, flow=resolve_flow(params))  # the key names the flow that runs

    def finetune_fraction(self, params) -> float:
        return params.qat_fraction if params.mode == "qat" else 0.0  # dynamic and static train nothing

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
        baseline = ctx.deps["baseline"].load_model("cpu")
        if p.flow == "pt2e":
            try:
                model = pt2e_int8_model(baseline, ctx.info, hook)
                ctx.record(int8_flow=PT2E_FLOW)
                return model
            except Exception as error:  # a model torch.export cannot capture: the FX flow, and the row says so
                reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]
                ctx.record(int8_flow=f"{FX_FLOW} (fallback: pt2e failed, {reason})")
                return int8_model(baseline, p, ctx.info, hook)  # export leaves the module itself untouched
        ctx.record(int8_flow=FX_FLOW if p.mode != "dynamic" else "torch.ao dynamic (eager)")
        return int8_model(baseline, p, ctx.info, hook)

    def measure(self, ctx, model, metrics):
        if isinstance(model, InductorInt8):
            n = quantized_parameter_count(model.graph)
            return {"params": n, "nonzero_params": n, "trainable_params": 0,
                    "size_format": "torch.save of the int8 program (torch.export.save: weights, scales, code)"}
        n = quantized_parameter_count(model)
        return {"params": n, "nonzero_params": n, "trainable_params": 0, "size_format": "torch.save(int8 state_dict)"}

    def build_model(self, spec, info, params):
        """The int8 architecture (weights still to be loaded) of the mode's flow."""
        fp32 = super().build_model(spec, info, params)
        return pt2e_int8_model(fp32, info) if params.flow == "pt2e" else int8_model(fp32, params, info)

    def restore(self, spec, info, params, state):
        """pt2e: the saved program itself; FX (also a pt2e cell whose export failed and fell back): the int8
        structure rebuilt, then its weights loaded."""
        if "program" in state:
            return InductorInt8.from_program(state["program"])
        model = self.build_model(spec, info, dataclasses.replace(params, flow="fx"))
        model.load_state_dict(state)
        return model
