"""Does a verdict survive more training? A table run at several training budgets (`--budgets 10,x4`): each row's
top-1, Δ to its reference and verdict at every budget, and whether the verdict holds across them.

Each budget is a plan of its own (PlanOptions.budget: every stage of every row at that budget, its milestones
stretched with it; a distiller's teacher keeps its own recipe), so its cells are cached like any others: a budget
already trained is reused, a new one trains. The profile's own budget is the table's plain cells."""
from __future__ import annotations

import shlex
import textwrap
from pathlib import Path

import pandas as pd

from suite.columns import TOP1, VERDICT, VERDICT_DELTA

HOLDS = "Verdict holds across budgets"


def kept_roles(budget_keeps: tuple[str, ...], budget_teacher: bool) -> tuple[str, ...]:
    """The roles whose rows and upstream models keep their own recipe under --budgets: the table's
    (Table.budget_keeps), less the teacher when --budget-teacher retrains it at each budget."""
    return tuple(role for role in budget_keeps if role != "teacher" or not budget_teacher)


def parse_budgets(budgets: str | list[str]) -> list[str]:
    """`--budgets` as a list ("10,x4" -> ["10", "x4"]), each checked, at least two: one line otherwise."""
    from suite.profiles import budget_epochs

    items = [b.strip() for b in budgets.split(",") if b.strip()] if isinstance(budgets, str) else list(budgets)
    if len(items) < 2:
        raise ValueError(f"--budgets needs two budgets or more to compare, got {items}")
    for budget in items:
        budget_epochs(budget, 1)  # a malformed budget fails here, before anything is planned
    return items


def verdict_word(verdict: object) -> str | None:
    """"better" / "worse" / "within noise" of a table's verdict ("better (q = 0.004)"), None for no verdict."""
    if not isinstance(verdict, str):
        return None
    word = verdict.split(" (q")[0]
    return word if word in ("better", "worse", "within noise") else None


def holds_across(verdicts: list[object], budgets: list[str]) -> str:
    """"yes" (the same better/worse at every budget), "within noise everywhere", "changes at B" (the first budget
    whose verdict differs from the first's), or "no verdict" where a budget has none (one seed, no reference)."""
    words = [verdict_word(v) for v in verdicts]
    if not words or any(w is None for w in words):
        return "no verdict" if any(isinstance(v, str) and v not in ("—", "") for v in verdicts) else "—"
    if all(w == "within noise" for w in words):
        return "within noise everywhere"
    changed = next((b for b, w in zip(budgets, words) if w != words[0]), None)
    return "yes" if changed is None else f"changes at {changed}"


def table_header(markdown: str) -> list[str]:
    """A rendered table's lines above its Markdown table (title, description, header bullets)."""
    lines = markdown.splitlines()
    return lines[:lines.index(next(line for line in lines if line.startswith("|"))) - 1]


def budget_header(headers: dict[str, list[str]]) -> list[str]:
    """One header for the budget table from each budget's own: a bullet the budgets share once, and every bullet
    that differs between them (the profile's recipes, devices and commits of each budget's cells, kd's student and
    rank agreement with the papers) once per budget, labelled, so nothing of a later budget is hidden behind the
    first's. Bullets are matched by their label (the text before the first colon)."""
    def label(line: str) -> str:
        return line.split(":")[0]

    bullets = {b: {label(line): line for line in h if line.startswith("- ")} for b, h in headers.items()}
    first = next(iter(headers.values()))
    out, done = [], set()
    for line in first + [line for h in headers.values() for line in h if line.startswith("- ")]:
        if not line.startswith("- "):
            out.append(line)
            continue
        if label(line) in done:  # each label once, however many budgets carry it
            continue
        done.add(label(line))
        versions = {b: bullets[b].get(label(line)) for b in headers}
        if len(set(versions.values())) == 1:
            out.append(line)
        else:
            out += [f"- Budget {b}: {v[2:]}" for b, v in versions.items() if v is not None]
    return out


def budget_table(per_budget: dict[str, tuple[pd.DataFrame, pd.DataFrame]], label_columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(display, numbers) across budgets from each budget's (display frame, numeric frame), rows in the first
    budget's order. `numbers` is long: one row per table row and budget."""
    budgets = list(per_budget)
    first_display = per_budget[budgets[0]][0]
    display = first_display[label_columns].copy()
    verdicts: dict[int, list[object]] = {i: [] for i in range(len(display))}
    for budget, (shown, _) in per_budget.items():
        for column, name in ((TOP1, f"Top-1 % @ {budget}"), (VERDICT_DELTA, f"Δ @ {budget}"), (VERDICT, f"Verdict @ {budget}")):
            if column in shown.columns:
                display[name] = shown[column].values
        for i in range(len(display)):
            verdicts[i].append(shown[VERDICT].values[i] if VERDICT in shown.columns else None)
    display[HOLDS] = [holds_across(verdicts[i], budgets) for i in range(len(display))]
    numbers = pd.concat([numeric.assign(budget=budget) for budget, (_, numeric) in per_budget.items()],
                        ignore_index=True)
    return display, numbers


def plot_budgets(numbers: pd.DataFrame, label_columns: list[str], title: str, path: Path) -> Path | None:
    """Δ top-1 to the reference row (mean and 95 % interval over seeds) against the budget, one line per row."""
    if "delta" not in numbers or numbers["delta"].isna().all():
        return None
    from suite.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    budgets = list(dict.fromkeys(numbers["budget"]))
    rows = numbers.dropna(subset=["delta"])
    for i, (label, group) in enumerate(rows.groupby(label_columns, sort=False)):
        label = " / ".join(map(str, label if isinstance(label, tuple) else (label,)))
        x = [budgets.index(b) for b in group["budget"]]
        low, high = group["delta"] - group["delta_low"], group["delta_high"] - group["delta"]
        ax.errorbar(x, group["delta"], yerr=[low.fillna(0), high.fillna(0)], marker="o", capsize=3,
                    color=plt.cm.tab20.colors[i % 20], label=label)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(budgets)), budgets)
    ax.set_xlabel("training budget")
    ax.set_ylabel("Δ top-1 to the reference row (points), 95 % interval")
    ax.set_title(textwrap.fill(title, 90), fontsize=9)  # a table's long title would run off the figure
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def budget_command(table: str, budgets: list[str], options: list[tuple[str, str | int | None]]) -> str:
    """The command line that trains (and, with --render-only, re-renders) a budget table: its (flag, value) options,
    those left unset (None or empty) omitted."""
    parts = ["python", "run_all.py", "--table", table]
    for flag, value in options:
        if value not in (None, "", False):
            parts += [f"--{flag}", str(value)]
    return shlex.join([*parts, "--budgets", ",".join(budgets)])  # quoted as a shell reads it back


def budget_costs(records_by_budget: dict[str, list[dict]]) -> str:
    """Each budget's training cost from its finished cells' own clocks; a cell shared by several budgets (a kept
    baseline or teacher) is counted once, at the first budget that has it."""
    seen: set[str] = set()
    parts = []
    for label, records in records_by_budget.items():
        own = [r for r in records if r.get("status") == "done" and r["key"] not in seen]
        seen.update(r["key"] for r in own)
        hours = sum(float((r.get("metrics") or {}).get("cell_seconds") or 0.0) for r in own) / 3600
        parts.append(f"{label}: {hours:.2f} h over {len(own)} cells")
    return "; ".join(parts)
