"""Table `compression`: the compression paper's study of LeNet-5 on MNIST (its Tables II-IV), plus
structured pruning and weight clustering, with honest sizes and speeds and accuracy on perturbed inputs.

Every compressed model starts from the same trained baseline cell (a cached dependency); the KD rows
distil LeNet-5 into a half-width LeNet-5 at each temperature of the paper's sweep.
"""
from __future__ import annotations

from suite import columns as C
from suite.columns import Relative
from suite.reference import reported
from suite.spec import CellSpec
from suite.tables import Table, TableOptions, TableRow, method_label, register_table

TEMPERATURES = (1, 2, 4, 6, 7, 8, 10, 20)


CONTROL = C.CONTROL
QAT_CONTROL = "Dense + QAT's fine-tuning (QAT's control)"


def qat_control_params() -> dict:
    """The dense model fine-tuned exactly as QAT fine-tunes (its epochs fraction and lr scale, read from quantize's
    defaults), nothing quantized: what QAT's extra epochs alone give."""
    from suite.plugins import get_method

    qat = get_method("quantize").make_params({"mode": "qat"})
    return {"sparsity": 0.0, "finetune_fraction": qat.qat_fraction, "finetune_lr_scale": qat.qat_lr_scale}


@register_table
class CompressionTable(Table):
    name = "compression"
    title = "Compression techniques on LeNet-5 (compression paper, Tables II-IV)"
    description = ("Pruning, quantization, weight clustering and distillation of one trained LeNet-5, each measured "
                   "the same way: accuracy (clean and perturbed), non-zero parameters, artifact size, latency.")
    columns = [C.TOP1, C.N, C.VERDICT_DELTA, C.VERDICT, "Verdict against", C.DELTA_UNTOUCHED, C.REPORTED,
               C.DELTA_REPORTED, C.NONZERO, C.SIZE_KB,
               C.SIZE_FORMAT, C.LATENCY,
               "Speed-up b1", C.TEST_TIME, "Test-set speed-up", "Reported size (as printed)",
               "Reported test-set time (s)", C.NOISE, C.SALT_PEPPER, "Int8 flow", C.TRAIN_COST]
    relative = [Relative("Speed-up b1", "_latency_ms", "ratio", template="{:.2f}×", missing="n/a"),
                Relative("Test-set speed-up", "_test_set_seconds", "ratio", template="{:.2f}×", missing="n/a")] \
        + C.verdict_columns(("_versus",), ("reference", "control", "qat_control", "student")) + [C.delta_to_untouched()]

    family = "compression"
    budget_keeps = ("teacher", "baseline", "reference")  # --budgets: a fine-tuning budget over the one trained LeNet-5

    @staticmethod
    def cell(opts: TableOptions, method: str, model: str = "lenet5", **params) -> CellSpec:
        return CellSpec.make(method, model, opts.dataset or "mnist", opts.profile, params=params, protocol="compression")

    @staticmethod
    def row(opts: TableOptions, label: str, spec: CellSpec, ref_row: str | None = None, table: str = "TII",
            role: str = "", versus: str = "baseline") -> TableRow:
        """`versus`: the row its verdict is against: "baseline" (the untouched LeNet-5), "control" (the dense model
        fine-tuned like the pruning and clustering rows), "qat_control" (the dense model fine-tuned like QAT) or
        "student" (the half-width student alone, for KD)."""
        refs = {c: reported("compression", table, ref_row, c, optional=c != "top1")  # size, time: some rows only
                for c in ("top1", "size", "test_set_seconds")} \
            if ref_row and (opts.dataset or "mnist") == "mnist" else {}
        return TableRow({"Model": label}, spec, [refs["top1"]] if refs.get("top1") else [],
                        {"Reported size (as printed)": f"{refs['size'].value:g}" if refs.get("size") else "—",
                         "Reported test-set time (s)": f"{refs['test_set_seconds'].value:g}"
                         if refs.get("test_set_seconds") else "—", "_versus": versus,
                         "Verdict against": {"baseline": "baseline", "control": "control",
                                             "qat_control": "QAT's control", "student": "student alone"}[versus]}, role=role)

    def method_rows(self, opts: TableOptions, method: str, params: dict) -> list[TableRow]:
        """A compression method at `params` (its defaults when empty), from the same baseline LeNet-5."""
        text = method_label(method, params)
        return [self.row(opts, text, self.cell(opts, method, **params))]

    def rows(self, opts: TableOptions) -> list[TableRow]:
        """The paper's operating points, then every other registered compression method at its defaults."""
        def cell(method: str, model: str = "lenet5", **params) -> CellSpec:
            return self.cell(opts, method, model, **params)

        def row(*args, **kw) -> TableRow:
            return self.row(opts, *args, **kw)

        tuned = {"versus": "control"}  # fine-tuned for the control's epochs: judged against it
        rows = [
            row("Baseline LeNet-5", cell("baseline"), "baseline", role="reference"),
            row(CONTROL, cell("prune", sparsity=0.0), role="control", versus="control"),
            row("Pruning, constant 50 % (global)", cell("prune", sparsity=0.5), "constant_50", **tuned),
            row("Pruning, constant 80 % (global)", cell("prune", sparsity=0.8), "constant_80", **tuned),
            row("Pruning, scheduled 50 → 80 %", cell("prune", sparsity=0.8, schedule="gradual", initial_sparsity=0.5),
                "scheduled_50_80", **tuned),
            row("Structured pruning, 40 % of channels", cell("structured_prune", ratio=0.4), **tuned),
            row("PTQ dynamic int8 (linear layers)", cell("quantize", mode="dynamic"), "ptq", "TIII"),
            row("PTQ static int8 (calibrated; pt2e when torchao is installed)", cell("quantize", mode="static"), "ptq",
                "TIII"),
            row("PTQ static int8 (torch.ao FX, calibrated)", cell("quantize", mode="static", flow="fx"), "ptq", "TIII"),
            row(QAT_CONTROL, cell("prune", **qat_control_params()), role="qat_control", versus="qat_control"),
            row("QAT int8", cell("quantize", mode="qat"), "qat", "TIII", versus="qat_control"),
            row("Weight clustering, 4 bit", cell("cluster", bits=4), **tuned),
            row("Half-width student alone", cell("baseline", "lenet5_half"), role="student", versus="student"),
        ]
        rows += [row(f"KD → half-width, T = {t}", cell("kd", "lenet5_half", teacher="lenet5", temperature=float(t)),
                     versus="student") for t in TEMPERATURES]
        return rows + self.family_rows(opts, {"prune", "structured_prune", "quantize", "cluster"})

    def notes(self, opts: TableOptions) -> list[str]:
        qat = qat_control_params()
        return [
            "The paper used TensorFlow 2 (Adam lr 1e-3, 10 epochs, batch 256, 10 % validation split); the `compression` "
            "protocol uses that optimizer and schedule in PyTorch for the baseline and every fine-tuning stage "
            "(no validation split is held out). Its reported sizes are printed as \"Mb\" and are not comparable "
            "with ours in unit; compare ratios.",
            "The paper's PTQ row (TensorFlow Lite post-training quantization) is shown beside each of our PTQ rows.",
            "Int8 flow: which quantization flow produced the row (recorded by the cell). pt2e = torchao's "
            "X86InductorQuantizer after torch.export, run through inductor with freezing (int8 oneDNN kernels; "
            "compiled once per batch size before timing); torch.ao FX = the deprecated FX graph mode with fbgemm "
            "kernels, kept as the fallback and for QAT and dynamic quantization. The pt2e row's test-set time "
            "includes inductor compiling the graph at each new batch size (once per shape, seconds); its latency and "
            "throughput are timed after warm-up calls and do not.",
            "Sizes: gzip of the saved state dict for unstructured pruning (zeros compress; dense kernels gain no "
            "speed from them), the saved int8 state dict for quantization (pt2e: the saved int8 program, graph "
            "code included), bit-packed indices + codebooks "
            "(computed) for clustering, the saved fp32 state dict otherwise.",
            f"Verdicts: each row against the row named in \"Verdict against\": the pruning, channel-pruning and "
            f"clustering rows fine-tune for half the recipe's epochs after compressing, so they are judged against "
            f"\"{CONTROL}\" (the baseline fine-tuned exactly so, nothing pruned): a gain the control shows too is the "
            "extra epochs'; PTQ rows train nothing and are judged against the untouched baseline; QAT fine-tunes "
            f"{qat['finetune_fraction']:g} of the epochs at {qat['finetune_lr_scale']:g}× the lr, so it is judged "
            f"against \"{QAT_CONTROL}\" (the baseline fine-tuned exactly so, nothing quantized); KD students "
            "against the half-width student trained alone. The Δ to the untouched baseline is beside every row, "
            "as the paper compares.",
            "Speed-ups are against the baseline row on the same machine; test-set time is one pass over the "
            "whole test split at the recipe's evaluation batch size.",
            "Perturbed inputs: Gaussian noise (σ = 0.3 of the pixel range) and salt-and-pepper noise on 10 % of the "
            "pixels, both with a fixed seed and clamped to [0, 1].",
        ]
