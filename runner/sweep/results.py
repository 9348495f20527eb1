"""A sweep's results as a person wants to see them: the trials sorted by the metric (a table), the metric per trial
and over the intervals (two SVG pictures, no plotting library), and a CSV of the same rows.

The value of a trial is the last value it logged of the primary metric (what MLflow shows as the run's metric);
its curve is every value it logged, in order (one per interval, as the early-termination policies count).
"""

from __future__ import annotations

import csv
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mljob.runner.history import RunView

TRIAL_TAG = "mljob.trial"
_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]


def _duration(view: RunView) -> float | None:
    if view.start_time and view.end_time:
        return (view.end_time - view.start_time) / 1000
    return None


@dataclass
class Report:
    metric: str
    goal: str
    trials: list[RunView]
    curves: Mapping[str, Sequence[float]]
    keys: Sequence[str] = ()

    def value(self, view: RunView) -> float | None:
        found = view.metrics.get(self.metric)
        return None if found is None or found != found else float(found)

    def ranked(self) -> list[RunView]:
        """Completed trials with a value, best first; then the rest, by trial number."""
        sign = 1 if self.goal == "minimize" else -1
        scored = [v for v in self.trials if v.status == "Completed" and self.value(v) is not None]
        scored.sort(key=lambda v: sign * (self.value(v) or 0.0))
        rest = sorted((v for v in self.trials if v not in scored), key=lambda v: int(v.tags.get(TRIAL_TAG, 0)))
        return scored + rest

    def best(self) -> RunView | None:
        ranked = self.ranked()
        return ranked[0] if ranked and ranked[0].status == "Completed" and self.value(ranked[0]) is not None else None

    def hyperparameters(self, view: RunView) -> dict[str, str]:
        keys = self.keys or sorted(view.params)
        return {k: view.params[k] for k in keys if k in view.params}

    # --- text -----------------------------------------------------------------------------------------------------

    def rows(self) -> list[list[str]]:
        best = self.best()
        rows = []
        for view in self.ranked():
            value = self.value(view)
            status = view.status
            if view.tags.get("mljob.sweep.early_termination"):
                status = "Canceled (early termination)"
            elif status == "Completed" and value is None:
                status = "Completed (no metric)"
            took = _duration(view)
            rows.append([
                ("* " if best is not None and view.run_id == best.run_id else "  ") + view.tags.get(TRIAL_TAG, "?"),
                view.name, status, "-" if value is None else f"{value:.6g}",
                "-" if took is None else f"{took:.1f}s",
                " ".join(f"{k}={v}" for k, v in self.hyperparameters(view).items()),
            ])
        return rows

    def table(self) -> list[str]:
        header = ["trial", "name", "status", self.metric, "duration", "hyperparameters"]
        rows = [header, *self.rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
        return ["  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)), r[-1]]).rstrip() for r in rows]

    # --- files ----------------------------------------------------------------------------------------------------

    def write(self, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        written = [folder / "trials.csv", folder / "metric_by_trial.svg", folder / "metric_over_intervals.svg"]
        with written[0].open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["trial", "name", "status", self.metric, "duration_s", *self.keys])
            for view in self.ranked():
                value = self.value(view)
                took = _duration(view)
                writer.writerow([view.tags.get(TRIAL_TAG, ""), view.name, view.status,
                                 "" if value is None else value, "" if took is None else f"{took:.3f}",
                                 *(view.params.get(k, "") for k in self.keys)])
        written[1].write_text(self._by_trial_svg(), encoding="utf-8")
        written[2].write_text(self._curves_svg(), encoding="utf-8")
        return written

    def _by_trial_svg(self) -> str:
        points = [(int(v.tags.get(TRIAL_TAG, 0)), self.value(v), v) for v in self.trials]
        scored = [(n, y, v) for n, y, v in points if y is not None]
        best = self.best()
        plot = _Plot(f"{self.metric} per trial ({self.goal})", "trial", self.metric,
                     [n for n, _, _ in scored] or [0, 1], [y for _, y, _ in scored] or [0, 1])
        running: list[tuple[float, float]] = []
        current: float | None = None
        for n, y, v in sorted(scored, key=lambda p: p[0]):
            better = current is None or (y < current if self.goal == "minimize" else y > current)
            if v.status == "Completed" and better:
                current = y
            if current is not None:
                running.append((n, current))
        plot.line(running, "#999999", dashed=True, label="best so far")
        for n, y, v in scored:
            color = "#d62728" if best is not None and v.run_id == best.run_id else "#1f77b4"
            plot.dot(n, y, color, f"{v.name}: {y:g} ({v.status})")
        return plot.render()

    def _curves_svg(self) -> str:
        curves = {k: [x for x in c if x == x] for k, c in self.curves.items() if c}
        xs = [i + 1 for c in curves.values() for i in range(len(c))] or [1, 2]
        ys = [y for c in curves.values() for y in c] or [0, 1]
        plot = _Plot(f"{self.metric} over intervals (one line per trial)", "interval", self.metric, xs, ys)
        for index, (trial, curve) in enumerate(sorted(curves.items(), key=lambda kv: int(kv[0]))):
            plot.line([(i + 1, y) for i, y in enumerate(curve)], _COLORS[index % len(_COLORS)], label=f"trial {trial}")
        return plot.render()


class _Plot:
    """A small SVG scatter/line chart with axes and ticks."""

    W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 400, 70, 130, 40, 50

    def __init__(self, title: str, xlabel: str, ylabel: str, xs: Sequence[float], ys: Sequence[float]) -> None:
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel
        self.x0, self.x1 = _span(xs)
        self.y0, self.y1 = _span(ys)
        self.parts: list[str] = []
        self.legend: list[tuple[str, str]] = []

    def _x(self, x: float) -> float:
        return self.LEFT + (x - self.x0) / (self.x1 - self.x0) * (self.W - self.LEFT - self.RIGHT)

    def _y(self, y: float) -> float:
        return self.H - self.BOTTOM - (y - self.y0) / (self.y1 - self.y0) * (self.H - self.TOP - self.BOTTOM)

    def dot(self, x: float, y: float, color: str, tip: str) -> None:
        self.parts.append(f'<circle cx="{self._x(x):.1f}" cy="{self._y(y):.1f}" r="4" fill="{color}">'
                          f"<title>{html.escape(tip)}</title></circle>")

    def line(self, points: Sequence[tuple[float, float]], color: str, *, dashed: bool = False, label: str = "") -> None:
        if not points:
            return
        path = " ".join(f"{self._x(x):.1f},{self._y(y):.1f}" for x, y in points)
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        self.parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"{dash}/>')
        if len(points) == 1:
            self.dot(*points[0], color, label)
        if label:
            self.legend.append((label, color))

    def render(self) -> str:
        w, h = self.W, self.H
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
               'font-family="sans-serif" font-size="11">', f'<rect width="{w}" height="{h}" fill="white"/>',
               f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">{html.escape(self.title)}</text>']
        left, right, top, bottom = self.LEFT, w - self.RIGHT, self.TOP, h - self.BOTTOM
        out.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" '
                   'stroke="#333"/>')
        for tick in _ticks(self.x0, self.x1, whole=True):  # trials and intervals are counted
            x = self._x(tick)
            out.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#333"/>'
                       f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{tick:g}</text>')
        for tick in _ticks(self.y0, self.y1):
            y = self._y(tick)
            out.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eee"/>'
                       f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.4g}</text>')
        out.append(f'<text x="{(left + right) / 2}" y="{h - 12}" text-anchor="middle">'
                   f"{html.escape(self.xlabel)}</text>")
        out.append(f'<text x="16" y="{(top + bottom) / 2}" text-anchor="middle" '
                   f'transform="rotate(-90 16 {(top + bottom) / 2})">{html.escape(self.ylabel)}</text>')
        out += self.parts
        for index, (label, color) in enumerate(self.legend[:20]):
            y = top + 12 + index * 16
            out.append(f'<line x1="{right + 10}" y1="{y - 4}" x2="{right + 28}" y2="{y - 4}" stroke="{color}" '
                       f'stroke-width="2"/><text x="{right + 32}" y="{y}">{html.escape(label)}</text>')
        out.append("</svg>")
        return "\n".join(out) + "\n"


def _span(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if low == high:
        pad = abs(low) * 0.1 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.05
    return low - pad, high + pad


def _ticks(low: float, high: float, count: int = 6, whole: bool = False) -> list[float]:
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= step * factor:
            step *= factor
            break
    if whole:
        step = max(step, 1)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 12) for i in range(int((high - first) / step) + 1)]
