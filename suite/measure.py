"""Honest model measurements: parameters (total, trainable, non-zero), on-disk size of the saved
artifact, FLOPs, batch-1 latency (median and p90 after warm-up, threads and device named),
large-batch throughput, and energy only where a meter is readable (NVML, RAPL), else n/a."""
from __future__ import annotations

import io
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from suite.modes import eval_mode

RAPL_ROOT = Path("/sys/class/powercap")
ENERGY_WINDOW_S = 2.0  # over 10x NVML's update period


def count_parameters(model: nn.Module) -> dict[str, int]:
    params = list(model.parameters())
    return {"params": sum(p.numel() for p in params),
            "trainable_params": sum(p.numel() for p in params if p.requires_grad),
            "nonzero_params": sum(int(torch.count_nonzero(p.detach())) for p in params)}


def state_dict_bytes(model: nn.Module) -> bytes:
    """`torch.save(model.state_dict())` in memory: the artifact a user would ship."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def saved_size_bytes(model: nn.Module, path: Path | None = None) -> int:
    """Bytes of the saved state dict (written to `path` when given)."""
    if path is not None:
        torch.save(model.state_dict(), path)
        return path.stat().st_size
    return len(state_dict_bytes(model))


def count_flops(model: nn.Module, example: torch.Tensor) -> int | None:
    """Forward FLOPs for one input (torch.utils.flop_counter counts a multiply-add as 2 FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with eval_mode(model), torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example)
        return int(counter.get_total_flops())
    except Exception:  # quantized or exotic ops the counter does not know
        return None


def _timer_class():
    """torch.utils.benchmark.Timer, imported on first use (its import logs a CUDA_HOME warning on CPU machines)."""
    import logging

    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils.benchmark import Timer

    return Timer


def time_calls(fn: Callable[[Any], object], inputs: list[Any], warmup: int = 10, passes: int = 1) -> list[float]:
    """Milliseconds of one call `fn(x)` per input, after `warmup` untimed calls on the first input.

    Timed by torch.utils.benchmark (it synchronises CUDA around every measurement, runs at torch's current
    thread count and adds two untimed calls before each), one measurement per input and pass, so the median and
    p90 describe single calls. With several `passes` over all the inputs an input's figure is the median of its
    passes: a stall of the machine (another process, a page fault) lands in one pass of an input, not in its
    figure, and so not in a mean over the inputs either.
    """
    threads = torch.get_num_threads()

    def timer(x: Any):
        return _timer_class()("fn(x)", globals={"fn": fn, "x": x}, num_threads=threads)

    if warmup:
        timer(inputs[0]).timeit(warmup)
    runs = [[timer(x).timeit(1).median * 1000 for x in inputs] for _ in range(passes)]
    return [statistics.median(times) for times in zip(*runs)]


def throughput(fn: Callable[[Any], object], batch: torch.Tensor, seconds: float) -> float:
    """Images per second of `fn(batch)`: torch.utils.benchmark's blocked autorange over `seconds`."""
    timer = _timer_class()("fn(x)", globals={"fn": fn, "x": batch}, num_threads=torch.get_num_threads())
    return len(batch) / timer.blocked_autorange(min_run_time=seconds).median


def input_dependent(metrics: dict[str, Any]) -> bool:
    """Whether the cell timed a model whose work depends on its input (early exit) over real test images."""
    return bool(metrics.get("latency_input")) and metrics.get("latency_mean_ms") is not None


def latency_figure(metrics: dict[str, Any]) -> float | None:
    """A cell's batch-1 latency as the papers define it: for a model whose work depends on the input (early exit:
    `latency_input` names the real images timed) the expected latency, the mean over those images (BranchyNet's
    definition; the median of a bimodal distribution describes neither mode); for any other the median of repeated
    runs on one input. The basis of every speed-up."""
    return metrics["latency_mean_ms"] if input_dependent(metrics) else metrics.get("latency_ms")


def latency_stats(times_ms: list[float]) -> dict[str, float]:
    ordered = sorted(times_ms)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {"latency_ms": statistics.median(ordered), "latency_p90_ms": p90, "latency_runs": len(ordered)}


class RaplCounter:
    """CPU energy from RAPL over every package (`intel-rapl:N` under `root`; their sub-zones are parts of them),
    in mJ since it was made. Each package's counter wraps at its `max_energy_range_uj`: a reading below the last one
    adds that range, so a window may span a wrap (not two: keep windows under the range, minutes at most)."""

    def __init__(self, root: Path = RAPL_ROOT) -> None:
        self.zones = sorted(p for p in Path(root).glob("intel-rapl:*") if p.name.count(":") == 1
                            and (p / "energy_uj").exists())
        if not self.zones:
            raise OSError(f"no RAPL package under {root}")
        self.ranges = [int((z / "max_energy_range_uj").read_text()) if (z / "max_energy_range_uj").exists() else 2 ** 32
                       for z in self.zones]
        self.last = [self._raw(z) for z in self.zones]
        self.total_uj = 0

    @staticmethod
    def _raw(zone: Path) -> int:
        return int((zone / "energy_uj").read_text())

    def read_mj(self) -> float:
        for i, zone in enumerate(self.zones):
            now = self._raw(zone)
            self.total_uj += now - self.last[i] + (self.ranges[i] if now < self.last[i] else 0)
            self.last[i] = now
        return self.total_uj / 1000


class EnergyMeter:
    """Energy counter of the device, or None where no meter is readable (this is never estimated)."""

    def __init__(self, device: torch.device, rapl_root: Path | None = None) -> None:
        self.name, self._read = None, None
        if device.type == "cuda":
            try:
                import pynvml  # the nvidia-ml-py package (extra `gpu`)

                pynvml.nvmlInit()
                handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
                pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                self.name, self._read = "NVML", lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # mJ
            except Exception:
                pass
        else:
            try:
                counter = RaplCounter(rapl_root or RAPL_ROOT)
                self.name = f"RAPL ({len(counter.zones)} package{'s' if len(counter.zones) > 1 else ''})"
                self._read = counter.read_mj
            except (OSError, ValueError):
                pass

    @property
    def available(self) -> bool:
        return self._read is not None

    def read_mj(self) -> float:
        assert self._read is not None
        return float(self._read())

    def per_call_mj(self, call: Callable[[], object], min_seconds: float = ENERGY_WINDOW_S) -> float:
        """Mean energy of one `call`, over a window of at least `min_seconds`: NVML's counter moves every ~100 ms
        (RAPL's every ~1 ms), so a shorter window would read a step of the counter, not the work."""
        calls, start, t0 = 0, self.read_mj(), time.perf_counter()
        while calls == 0 or time.perf_counter() - t0 < min_seconds:
            call()
            calls += 1
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return (self.read_mj() - start) / calls

    @property
    def missing_reason(self) -> str:
        return "no meter (no NVML on CPU, no readable RAPL)"


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; elsewhere what `platform` knows), with "native bf16" where it
    has AVX512-BF16 or AMX: the one property that decides whether `--precision auto` trains in bf16."""
    fields, native_bf16 = {}, False
    try:
        info = Path("/proc/cpuinfo").read_text()
        for line in info.splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        native_bf16 = " avx512_bf16" in info or " amx_bf16" in info
    except OSError:
        pass
    name = fields.get("model name") or f"{platform.processor() or platform.machine()} CPU"
    # a virtual machine's model name may be generic ("Intel(R) Xeon(R) Processor"): family and model say which
    details = [f"family {fields['cpu family']} model {fields['model']}"] if "cpu family" in fields and "model" in fields else []
    details += ["native bf16"] if native_bf16 else []
    return f"{name} ({'; '.join(details)})" if details else name


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {torch.get_num_threads()} threads"


@torch.no_grad()
def count_nonzero_flops(model: nn.Module, example: torch.Tensor) -> int | None:
    """FLOPs of the conv and linear layers counting only non-zero weights (2 per multiply-add): what a
    kernel that skips pruned weights would compute -- ShrinkBench's "FLOPs after removal", the basis of a
    theoretical speed-up. None for a model without plain conv / linear layers (an int8 model)."""
    total, hooks = [0], []

    def conv(m: nn.Conv2d, _, out: torch.Tensor) -> None:
        total[0] += 2 * int((m.weight != 0).sum()) * out.shape[-1] * out.shape[-2]

    def linear(m: nn.Linear, _, out: torch.Tensor) -> None:
        total[0] += 2 * int((m.weight != 0).sum())

    for m in model.modules():
        if type(m) is nn.Conv2d:
            hooks.append(m.register_forward_hook(conv))
        elif type(m) is nn.Linear:
            hooks.append(m.register_forward_hook(linear))
    try:
        with eval_mode(model), torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return total[0] if hooks else None


def batch1_latency(model: nn.Module, input_shape: tuple[int, int, int], device: torch.device | str = "cpu",
                   precision: str = "fp32", runs: int = 100, warmup: int = 10) -> dict[str, float]:
    """Median and p90 milliseconds of one image through `model` (eval mode) in `precision`."""
    from suite.numerics import batch_to_memory_format, in_precision

    device = torch.device(device)
    one = batch_to_memory_format(torch.randn(1, *input_shape, device=device), precision)
    return latency_stats(time_calls(in_precision(model.eval().to(device), device, precision), [one] * runs, warmup))


def measure_model(model: nn.Module, input_shape: tuple[int, int, int], device: torch.device | str = "cpu", *,
                  latency_runs: int = 100, warmup: int = 10, throughput_batch: int = 256,
                  throughput_seconds: float = 2.0, artifact: Path | None = None, precision: str = "fp32") -> dict:
    """All cost figures of `model` for one input of shape C x H x W; latency and throughput are timed in
    `precision` (bf16: autocast + channels_last inputs), the way the cell evaluates it."""
    from suite.numerics import batch_to_memory_format, in_precision

    device = torch.device(device)
    model = model.eval().to(device)
    out: dict = count_parameters(model)
    out["size_bytes"] = saved_size_bytes(model, artifact)
    out["flops"] = count_flops(model, torch.randn(1, *input_shape, device=device))
    out["flops_nonzero"] = count_nonzero_flops(model, torch.zeros(1, *input_shape, device=device))
    out.update(batch1_latency(model, input_shape, device, precision, latency_runs, warmup))
    one = batch_to_memory_format(torch.randn(1, *input_shape, device=device), precision)
    model = in_precision(model, device, precision)
    meter = EnergyMeter(device)
    if meter.available:
        with torch.inference_mode():
            out["energy_mj"] = meter.per_call_mj(lambda: model(one))
        out["energy_meter"] = meter.name
    else:
        out["energy_mj"] = None
        out["energy_meter"] = meter.missing_reason
    batch = batch_to_memory_format(torch.randn(throughput_batch, *input_shape, device=device), precision)
    out["throughput_img_s"] = throughput(model, batch, throughput_seconds)
    out["throughput_batch"] = throughput_batch
    out["threads"] = torch.get_num_threads()
    out["device_name"] = device_description(device)
    out["measured_precision"] = precision
    out["latency_timer"] = "torch.utils.benchmark"
    return out

