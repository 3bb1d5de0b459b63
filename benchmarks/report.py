"""Benchmarks: ratios, the JSON document of a run and its Markdown table."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from benchmarks.at_scale import markdown as scale_markdown
from benchmarks.goals import check_all
from benchmarks.metrics import SPECS, WORKLOADS, Spec, Value
from benchmarks.plans import PLANS, Plan

ORDER = ("pxcluster", "ipyparallel", "dask", "relay")
BASELINES = ORDER[1:]
TIMES = "\u00d7"  # the multiplication sign
NOTHING = "\u2013"  # an en dash: not measured in this run
SHORT = {"pxcluster": "px", "ipyparallel": "ipp", "dask": "dask", "relay": "relay"}


def plan_labels(plan: Plan) -> dict[str, str]:
    """The sizes that row titles mention."""
    return {
        "tasks": f"{plan.tasks:,}",
        "items": f"{plan.map_items:,}",
        "big": f"{plan.big_bytes / 1e6:g} MB",
        "scatter": f"{plan.scatter_items:,}",
        "many": str(plan.many_engines),
        "cli": str(plan.cli_engines),
    }


def values_of(doc: dict[str, Any]) -> dict[str, dict[str, Value]]:
    return {
        name: {k: Value.from_json(v) for k, v in rec.get("metrics", {}).items()}
        for name, rec in doc["systems"].items()
    }


def ratio(values: dict[str, dict[str, Value]], key: str, other: str) -> float | None:
    """pxcluster's figure divided by ``other``'s, when both were measured."""
    px = values.get("pxcluster", {}).get(key)
    base = values.get(other, {}).get(key)
    if px is None or base is None or px.status != "ok" or base.status != "ok":
        return None
    if px.value is None or not base.value:
        return None
    return px.value / base.value


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    """Add ratios and goals to a run's document (systems, machine, plan already in it)."""
    values = values_of(doc)
    doc["ratios"] = {
        spec.key: {other: ratio(values, spec.key, other) for other in BASELINES}
        for spec in SPECS
        if "pxcluster" in values
    }
    doc["goals"] = check_all(values)
    doc["specs"] = [
        {"key": s.key, "workload": s.workload, "title": s.title, "unit": s.unit, "better": s.better}
        for s in SPECS
    ]
    return doc


# -- Markdown ------------------------------------------------------------------------------


def fmt(value: float, unit: str) -> str:
    if unit in ("µs", "tasks/s"):
        return f"{value:,.0f}"
    if unit == "GB/s":
        return f"{value:.3g}"
    if unit in ("ms", "MB"):
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    if unit == "s":
        return f"{value:.2f}"
    if unit == "%":
        return f"{value:.2f}"
    return f"{value:g}"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return ""
    return f"{r:.2g}{TIMES}" if r < 10 else f"{r:,.0f}{TIMES}"


def cell(value: Value | None, spec: Spec) -> str:
    if value is None:
        return NOTHING
    if value.status != "ok" or value.value is None:
        return {"wrong": "**wrong**"}.get(value.status, value.status)
    text = fmt(value.value, spec.unit)
    if value.p99 is not None:
        text += f" (p99 {fmt(value.p99, spec.unit)})"
    return text


def markdown(doc: dict[str, Any]) -> str:
    plan = dataclasses.replace(PLANS[doc["plan"]], engines=doc.get("engines", 2))
    labels = plan_labels(plan)
    values = values_of(doc)
    systems = sorted(doc["systems"], key=lambda s: ORDER.index(s) if s in ORDER else len(ORDER))
    m = doc["machine"]
    v = m["versions"]
    lines = [
        f"# Benchmarks: pxcluster, ipyparallel, Dask and a bare pyzmq relay ({doc['plan']})",
        "",
        f"Run {doc['started']} ({doc['wall_s']:.0f} s), pxcluster commit {m['commit']}; "
        f"all figures in [{doc.get('json_file', '')}]({doc.get('json_file', '')}). "
        f"Reproduce: `{doc['command']}`.",
        "",
        f"**Machine**: {m['cores']} cores ({m['physical_cores']} physical), "
        f"{m['memory_gb']} GB memory, {m['cpu']}, {m['os']}, Python {m['python']}.  ",
        f"**Versions**: pxcluster {v['pxcluster']}, ipyparallel {v['ipyparallel']}, "
        f"distributed {v['distributed']}, pyzmq {v['pyzmq']} (libzmq {v['libzmq']}), "
        f"numpy {v['numpy']}, cloudpickle {v['cloudpickle']}.  ",
        "**Load average** (1 min) before → after each system: "
        + ", ".join(
            f"{name} {rec['load_before'][0]:.2f} → {rec['load_after'][0]:.2f}"
            for name, rec in doc["systems"].items()
            if "load_before" in rec and "load_after" in rec
        )
        + ".",
        "",
        f"Each system ran alone, one after another, on its own local cluster of {plan.engines} "
        "engines (workers) unless a row says otherwise; figures are medians of the timed "
        "repeats after a warm-up, and every result was checked before its time counted. "
        f"Ratios are pxcluster ÷ other: ↓ rows (times) favour pxcluster below 1{TIMES}, ↑ rows "
        f"(rates) above 1{TIMES}; {NOTHING} means not measured in this run.",
        "",
        "| # | Measurement | Unit | "
        + " | ".join(systems)
        + " | "
        + " | ".join(f"px/{SHORT[b]}" for b in BASELINES if b in systems)
        + " |",
        "|---|---|---|" + "---:|" * (len(systems) + sum(b in systems for b in BASELINES)),
    ]
    for spec in SPECS:
        if not any(spec.key in values[s] for s in systems):
            continue
        arrow = "↓" if spec.better == "lower" else "↑"
        row = [spec.workload, spec.title.format(**labels), f"{spec.unit} {arrow}"]
        row += [cell(values[s].get(spec.key), spec) for s in systems]
        row += [
            fmt_ratio(doc["ratios"].get(spec.key, {}).get(b)) for b in BASELINES if b in systems
        ]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "## Goals (issues 5 and 13)",
        "",
        "| Goal | Target | Measured | Met |",
        "|---|---|---:|---|",
    ]
    for g in doc["goals"]:
        measured = "" if g["measured"] is None else f"{g['measured']:.3g}"
        met = {True: "yes", False: "**no**", None: "not measured"}[g["met"]]
        lines.append(f"| {g['goal']} | {g['target']} | {measured} | {met} |")
    if doc.get("scale"):
        lines += scale_markdown(doc["scale"])
    lines += _notes(doc, values, labels)
    lines += _how(doc)
    return "\n".join(lines) + "\n"


def _notes(
    doc: dict[str, Any], values: dict[str, dict[str, Value]], labels: dict[str, str]
) -> list[str]:
    out = ["", "## Notes", ""]
    for name, rec in doc["systems"].items():
        if rec.get("error"):
            out.append(f"- **{name}**: {rec['error']}")
        seen: dict[str, list[str]] = {}
        for key, value in values[name].items():
            if value.status != "ok":
                seen.setdefault(f"{value.status}: {value.note}", []).append(key)
        for text, keys in seen.items():
            out.append(f"- **{name}** {', '.join(keys)}: {text}")
    for name, rec in doc["systems"].items():
        left = rec.get("leftover_processes", [])
        if left:
            out.append(f"- **{name} left {len(left)} processes running** (killed): {left[:5]}")
    if not any(rec.get("leftover_processes") for rec in doc["systems"].values()):
        out.append("- No process was left running after any system stopped.")
    out.append(
        "- Workloads: "
        + "; ".join(f"{k} {w}" for k, w in WORKLOADS.items())
        + f". Idle figures: after one request per engine, over {doc['idle_window_s']:g} s."
    )
    return out


def _how(doc: dict[str, Any]) -> list[str]:
    systems = [s for s, rec in doc["systems"].items() if rec.get("how")]
    if not systems:
        return []
    ops: list[str] = []
    for s in systems:
        ops += [op for op in doc["systems"][s]["how"] if op not in ops]
    out = ["", "## How each system does it", "", "| Operation | " + " | ".join(systems) + " |"]
    out.append("|---|" + "---|" * len(systems))
    for op in ops:
        row = [doc["systems"][s]["how"].get(op, "").replace("|", "\\|") for s in systems]
        out.append(f"| {op} | " + " | ".join(f"`{r}`" if r else "" for r in row) + " |")
    return out


def write(doc: dict[str, Any], directory: Path, stem: str) -> tuple[Path, Path]:
    """Write the run as ``stem.json`` and its table as ``latest.md`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    doc["json_file"] = f"{stem}.json"
    js, md = directory / f"{stem}.json", directory / "latest.md"
    js.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    md.write_text(markdown(doc))
    return js, md
