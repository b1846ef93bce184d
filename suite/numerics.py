"""The numerics policy shared by training, evaluation and measurement: fp32, or bf16 autocast + channels_last.

`--precision auto` resolves once per run (before any cell key is computed, since precision changes
results): bf16 on CUDA and on CPUs with native bf16 instructions (AVX512-BF16 or AMX), fp32 elsewhere.
Native support is read from torch's own CPU feature probes (`torch.cpu._is_avx512_bf16_supported`,
`_is_amx_tile_supported`); where this torch lacks them, from the kernel's CPU flags. An emulated bf16
(oneDNN on plain AVX-512) is slower than fp32, so it never counts.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_PRECISION = "auto"  # the one default of the CLI, the Python API and Runner: same cells, one cache
DESCRIPTIONS = {"fp32": "fp32", "bf16": "bf16 autocast + channels_last"}


def native_bf16_cpu() -> bool:
    """True when this CPU executes bf16 dot products natively (AVX512-BF16 or AMX tiles)."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if any(p is not None for p in probes):
        return any(bool(p()) for p in probes if p is not None)
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name: str, device: torch.device) -> str:
    """`auto` -> "bf16" or "fp32" for `device`; an explicit choice is checked and kept."""
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; valid: {', '.join(PRECISIONS)}")
    if name != "auto":
        return name
    return "bf16" if device.type == "cuda" or (device.type == "cpu" and native_bf16_cpu()) else "fp32"


def emulated_bf16_warning(precision: str, device: torch.device) -> str | None:
    """One line for a run that asks for bf16 on a CPU without native bf16: it trains, but emulated (oneDNN converts
    every operand), so a ResNet20 step takes ~10x as long as in fp32 (6.0 s against 0.61 s per batch of 128 on an
    AMD EPYC with AVX2, 2026-12-07), and the FLOPs-based estimates of --dry-run do not know it."""
    if precision != "bf16" or device.type != "cpu" or native_bf16_cpu():
        return None
    return ("warning: --precision bf16 on a CPU without native bf16 (no AVX512-BF16 or AMX) is emulated, about 10x "
            "slower than fp32 here: continue a bf16 table on a machine with native bf16, or run the whole table in "
            "--precision fp32")


def describe(precision: str) -> str:
    return DESCRIPTIONS[precision]


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on `device` under "bf16" (weights and optimizer state stay fp32); a no-op under "fp32"."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def memory_format(precision: str) -> torch.memory_format:
    return torch.channels_last if precision == "bf16" else torch.contiguous_format


def to_memory_format(module: nn.Module, precision: str) -> nn.Module:
    return module.to(memory_format=memory_format(precision))


def batch_to_memory_format(x: torch.Tensor, precision: str) -> torch.Tensor:
    """4-D image batches follow the model's layout; anything else is left as it is."""
    return x.contiguous(memory_format=torch.channels_last) if precision == "bf16" and x.dim() == 4 else x


def in_precision(model: nn.Module, device: torch.device, precision: str):
    """`model` as a function of a batch that runs in `precision` (autocast, channels_last inputs): how the
    suite evaluates and times a cell's model."""
    def call(x: torch.Tensor) -> torch.Tensor:
        with autocast(device, precision):
            return model(batch_to_memory_format(x, precision))
    return call
