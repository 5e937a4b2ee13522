"""Turns raw measurements into the summary table (median, min-max, ratio to best peer) and chart.

Invariant: ratios are always oriented so that > 1.00 means "better than the reference" whatever the
metric's direction, and a ratio is printed only when both sides have at least one good measurement.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import _loops


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_better: bool


# Share of the window the vCPU's ksoftirqd thread ran: above this, the run was in the kernel mode
# where loopback packets wait for ksoftirqd to be scheduled (req/s capped, CPU/request still valid).
SOFTIRQD_MODE = 0.2

REQ_S = Metric("req_s", "throughput", "req/s", True)
CPU_US = Metric("cpu_us", "server CPU", "us/req", False)
SECONDS = Metric("seconds", "time", "s", False)
# Process CPU time of the same internal run: equal to wall time on a quiet machine, and unlike it
# not inflated when another process shares the vCPU.
CPU_SECONDS = Metric("cpu_seconds", "CPU", "s", False)
PEAK_RSS = Metric("peak_rss_mib", "peak RSS", "MiB", False)
RSS_GROWTH = Metric("rss_growth_kib", "RSS growth", "KiB", False)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "req/s":
        return f"{value / 1000:.1f}k"
    if unit == "s":
        return f"{value:.3f}" if value >= 0.1 else f"{value:.4f}"
    if unit in ("us/req", "MiB"):
        return f"{value:.1f}"
    return f"{value:.0f}"


def _ratio(value: float | None, ref: float | None, higher_better: bool) -> float | None:
    if value is None or ref is None or value <= 0 or ref <= 0:
        return None
    return value / ref if higher_better else ref / value


def summarize(
    raw: list[dict[str, Any]], points: list[Any], loops: list[str]
) -> list[dict[str, Any]]:
    """One row per (point, metric): per-loop median/min/max plus the ratios the issue asks for."""
    rows: list[dict[str, Any]] = []
    for point in points:
        for metric in point.metrics:
            cells: dict[str, dict[str, Any]] = {}
            for loop in [*loops, _loops.C_REFERENCE]:
                vals = [
                    r["metrics"][metric.key]
                    for r in raw
                    if r["point"] == point.id and r["loop"] == loop and "metrics" in r
                ]
                errs = [
                    r["error"]
                    for r in raw
                    if r["point"] == point.id and r["loop"] == loop and "error" in r
                ]
                deferred = sum(
                    1
                    for r in raw
                    if r["point"] == point.id
                    and r["loop"] == loop
                    and r.get("metrics", {}).get("ksoftirqd_share", 0.0) > SOFTIRQD_MODE
                )
                if vals:
                    cells[loop] = {
                        "median": statistics.median(vals),
                        "min": min(vals),
                        "max": max(vals),
                        "n": len(vals),
                        "softirqd_runs": deferred,
                    }
                elif errs:
                    cells[loop] = {"error": errs[0]}

            medians: dict[str, float] = {
                name: c["median"] for name, c in cells.items() if "median" in c
            }

            def med(name: str, medians: dict[str, float] = medians) -> float | None:
                return medians.get(name)

            peers = [(p, medians[p]) for p in _loops.PEERS if p in medians]
            best_name: str | None = None
            best_val: float | None = None
            if peers:
                pick = max if metric.higher_better else min
                best_name, best_val = pick(peers, key=lambda pv: pv[1])
            rows.append(
                {
                    "point": point.id,
                    "title": point.title,
                    "group": point.group,
                    "metric": metric.key,
                    "label": metric.label,
                    "unit": metric.unit,
                    "higher_better": metric.higher_better,
                    "cells": cells,
                    "best_peer": best_name,
                    "best_peer_value": best_val,
                    "tideloop_vs_best_peer": _ratio(
                        med("tideloop"), best_val, metric.higher_better
                    ),
                    "tideloop_py_vs_asyncio": _ratio(
                        med("tideloop-py"), med("asyncio"), metric.higher_better
                    ),
                    "tideloop_vs_c": _ratio(
                        med("tideloop"), med(_loops.C_REFERENCE), metric.higher_better
                    ),
                }
            )
    return rows


def _cell(cell: dict[str, Any] | None, unit: str) -> str:
    if not cell:
        return ""
    if "error" in cell:
        return "failed"
    # † = most runs of this cell had loopback softirq work deferred to ksoftirqd (see notes).
    mark = " †" if unit == "req/s" and 2 * cell.get("softirqd_runs", 0) > cell["n"] else ""
    if cell["n"] == 1:
        return fmt(cell["median"], unit) + mark
    return f"{fmt(cell['median'], unit)} ({fmt(cell['min'], unit)}–{fmt(cell['max'], unit)}){mark}"


def _metric_label(r: dict[str, Any]) -> str:
    if r["metric"] == "seconds":
        return "wall s"
    if r["metric"] == "cpu_seconds":
        return "CPU s"
    if r["unit"] == "req/s":
        return "req/s"
    return f"{r['label']} {r['unit']}"


def _x(r: float | None) -> str:
    return "–" if r is None else f"{r:.2f}x"


def format_table(rows: list[dict[str, Any]], loops: list[str]) -> str:
    """Markdown table: medians with (min–max) per loop, then ratios (> 1.00x = tideloop better)."""
    cols = [*loops]
    if any(_loops.C_REFERENCE in r["cells"] for r in rows):
        cols.append(_loops.C_REFERENCE)
    head = [
        "benchmark",
        "metric",
        *cols,
        "best peer",
        "tideloop / best peer",
        "tideloop-py / asyncio",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        best = f"{r['best_peer']}" if r["best_peer"] else "–"
        line = [
            r["title"],
            _metric_label(r),
            *[_cell(r["cells"].get(c), r["unit"]) for c in cols],
            best,
            _x(r["tideloop_vs_best_peer"]),
            _x(r["tideloop_py_vs_asyncio"]),
        ]
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


def softirqd_note(rows: list[dict[str, Any]]) -> str | None:
    if not any(
        "†" in _cell(c, r["unit"])
        for r in rows
        if r["unit"] == "req/s"
        for c in r["cells"].values()
    ):
        return None
    return (
        "† most runs of this cell had the kernel defer loopback packet processing to the "
        "ksoftirqd thread of the benchmark vCPU, which then competes with server and client for "
        "that vCPU: req/s is capped by the kernel there, server CPU us/req is not"
    )


def failures(rows: list[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for r in rows:
        for loop, cell in r["cells"].items():
            if "error" in cell:
                msg = f"{r['title']} on {loop}: {cell['error']}"
                if msg not in seen:
                    seen.append(msg)
    return seen


# Relative performance per row, so rows with different units share one axis: best peer = 1.0.
_COLORS = {
    "asyncio": "#9e9e9e",
    "uvloop": "#1f77b4",
    "rloop": "#ff7f0e",
    "tideloop": "#2ca02c",
    "tideloop-py": "#98df8a",
    _loops.C_REFERENCE: "#7f3fbf",
}


def _relative(
    rows: list[dict[str, Any]], series: list[str]
) -> list[tuple[str, list[float | None]]]:
    out: list[tuple[str, list[float | None]]] = []
    for r in rows:
        ref = r["best_peer_value"]
        if ref is None or r["metric"] == RSS_GROWTH.key:
            continue  # growth can be 0 or negative: no meaningful ratio
        vals = [
            _ratio(r["cells"].get(s, {}).get("median"), ref, r["higher_better"]) for s in series
        ]
        out.append((f"{r['title']} – {r['label']}", vals))
    return out


def write_chart(rows: list[dict[str, Any]], loops: list[str], path: Path, subtitle: str) -> Path:
    """PNG with matplotlib when installed, else a hand-written SVG; returns the file written."""
    series = [s for s in [*loops, _loops.C_REFERENCE] if any(s in r["cells"] for r in rows)]
    data = _relative(rows, series)
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return _write_svg(data, series, path.with_suffix(".svg"), subtitle)
    # One small panel per row: the bars stay readable however many rows a run produced.
    ncols = 4
    nrows = max(1, -(-len(data) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(12, 1.9 * nrows + 1.2), squeeze=False)
    cap = 2.5  # an outlier (e.g. a peer starved by another process) must not flatten the rest
    for k, ax in enumerate(axes.flat):
        if k >= len(data):
            ax.axis("off")
            continue
        label, vals = data[k]
        xs = range(len(series))
        heights = [min(v, cap) if v else 0.0 for v in vals]
        ax.bar(xs, heights, color=[_COLORS.get(s_, "#555") for s_ in series])
        for x, v in zip(xs, vals, strict=True):
            if v and v > cap:
                ax.text(x, cap, f"{v:.1f}", ha="center", va="bottom", fontsize=6)
        ax.axhline(1.0, color="black", linewidth=0.7)
        ax.set_ylim(0, max([1.2, *heights]) * 1.12)
        ax.set_xticks([])
        ax.tick_params(labelsize=6)
        ax.set_title(label, fontsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=_COLORS.get(s_, "#555")) for s_ in series]
    fig.legend(
        handles,
        series,
        loc="upper center",
        ncol=len(series),
        fontsize=8,
        bbox_to_anchor=(0.5, 1.0 - 0.35 / (1.9 * nrows + 1.2)),
    )
    fig.suptitle(
        f"tideloop benchmarks: relative to the best of uvloop/rloop (> 1 = better)\n{subtitle}",
        fontsize=9,
        y=1.0,
    )
    fig.tight_layout(rect=(0, 0, 1, 1.0 - 0.8 / (1.9 * nrows + 1.2)))
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _write_svg(
    data: list[tuple[str, list[float | None]]], series: list[str], path: Path, subtitle: str
) -> Path:
    label_w, plot_w, bar_h, gap = 330, 520, 9, 8
    row_h = bar_h * len(series) + gap
    top = 50
    height = top + row_h * len(data) + 40 + 16 * len(series)
    vmax = max([v for _, vals in data for v in vals if v] + [1.0]) * 1.05
    scale = plot_w / vmax
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 20}" '
        f'height="{height}" font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="20" font-size="14">tideloop benchmarks – {_esc(subtitle)}</text>',
        '<text x="10" y="38">bars: relative to the best of uvloop/rloop (&gt; 1 = better)</text>',
    ]
    for k, (label, vals) in enumerate(data):
        y0 = top + k * row_h
        parts.append(
            f'<text x="{label_w - 6}" y="{y0 + row_h / 2}" text-anchor="end">{_esc(label)}</text>'
        )
        for i, v in enumerate(vals):
            if v:
                parts.append(
                    f'<rect x="{label_w}" y="{y0 + i * bar_h}" width="{v * scale:.1f}" '
                    f'height="{bar_h - 1}" fill="{_COLORS.get(series[i], "#555")}"/>'
                )
    x1 = label_w + scale
    parts.append(
        f'<line x1="{x1:.1f}" y1="{top}" x2="{x1:.1f}" y2="{top + row_h * len(data)}" '
        'stroke="black"/>'
    )
    ly = top + row_h * len(data) + 20
    for i, s in enumerate(series):
        parts.append(
            f'<rect x="{label_w}" y="{ly + 16 * i - 9}" width="10" height="10" '
            f'fill="{_COLORS.get(s, "#555")}"/><text x="{label_w + 16}" '
            f'y="{ly + 16 * i}">{_esc(s)}</text>'
        )
    parts.append("</svg>")
    path.write_text("\n".join(parts))
    return path


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
