"""The charts of `report.html`, as plotly figures built from a run's recorded files.

Every series is aggregated per window in numpy before it becomes a figure: a five-minute run
has some 300k requests, and the page must stay small and quick to open.  Times are real
seconds since the load began, drawn on the scenario's simulated clock, since that is the
clock the scenario (and the person reading) speaks of."""

from __future__ import annotations

import csv
import gzip
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from simulator import tables

WINDOW_S = 10.0           # real seconds per point, for runs of 100 s of load or more
POINTS_AT_LEAST = 10      # shorter runs get narrower windows, so a rehearsal still draws a curve
MIN_SAMPLES = 5           # a percentile of fewer requests than this is noise, not a point
PERCENTILES = (50, 95, 99)
MAIN_STEPS = ("login", "nearby_stores", "catalogue", "create_order", "pay", "order_status")
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
SIDE_DASH = {"baseline": "solid", "canary": "dash"}
STAGES = ("session", "viewed", "ordered", "paying", "paid", "completed")
SHOWN_STAGES = ("session", "viewed", "ordered", "paid", "completed")
CLASS_COLOUR = {"pass": "#1a7f37", "fail": "#cf222e", "inconclusive": "#9a6700"}
# Forest panels: kind -> (axis title, factor from the gate's effect to the axis).
FOREST_KINDS = {"latency": ("latency shift, ms (canary - baseline)", 1.0),
                "rate": ("rate difference, percentage points (canary - baseline)", 1.0),
                "value": ("relative difference of means, % (canary / baseline - 1)", 100.0)}


@dataclass
class Requests:
    """requests.csv.gz as columns."""

    t: np.ndarray
    side: np.ndarray
    name: np.ndarray
    ms: np.ndarray
    failed: np.ndarray
    server_error: np.ndarray

    @classmethod
    def read(cls, path: Path) -> Requests:
        rows: list[list[str]] = []
        if path.exists():
            with gzip.open(path, "rt", encoding="utf-8", newline="") as file:
                reader = csv.reader(file)
                next(reader, None)
                rows = [row for row in reader if len(row) == 6]
        t, side, name, status, ms, failed = (list(c) for c in zip(*rows, strict=True)) \
            if rows else ([],) * 6
        status_codes = np.array(status, dtype=int)
        return cls(np.array(t, dtype=float), np.array(side, dtype=str),
                   np.array(name, dtype=str), np.array(ms, dtype=float),
                   np.array(failed, dtype=str) == "1",
                   (status_codes >= 500) & (status_codes < 600))


def read_sessions(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with gzip.open(path, "rt", encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


class Clock:
    """Real seconds since the load began, in windows, as the scenario's simulated instants."""

    def __init__(self, facts: dict, last_s: float) -> None:
        self.start = datetime.fromisoformat(facts["window"].split(" - ")[0])
        self.speed = float(facts["speed"])
        load_s = float(facts.get("real_seconds") or last_s or WINDOW_S)
        self.width = min(WINDOW_S, max(load_s / POINTS_AT_LEAST, 1.0))
        self.last_s = max(last_s, 0.0)

    def at(self, seconds) -> list[datetime]:
        return [self.start + timedelta(seconds=float(s) * self.speed) for s in seconds]

    def window(self, seconds: np.ndarray) -> np.ndarray:
        return (seconds // self.width).astype(int)

    def middles(self, ids: np.ndarray) -> list[datetime]:
        """Each window's middle; the last window's middle of what it saw, not of its width."""
        lows = ids * self.width
        highs = np.minimum(lows + self.width, max(self.last_s, float(lows.max(initial=0))))
        return self.at((lows + highs) / 2)

    @property
    def label(self) -> str:
        return f"{self.width:g} s of load ({self.width * self.speed / 60:g} simulated min)"


def _groups(window: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Values split by window, windows ascending: one sort, not one mask per window."""
    if not len(window):
        return window, []
    order = np.argsort(window, kind="stable")
    ordered = window[order]
    cuts = np.flatnonzero(np.diff(ordered)) + 1
    return ordered[np.r_[0, cuts]], np.split(values[order], cuts)


def arrivals(client: dict, clock: Clock) -> go.Figure:
    """A step line per series: each 10-second window's rate holds for the whole window."""
    windows = client.get("arrival_windows") or []
    starts = [float(w["start_s"]) for w in windows]
    # The last window ends with the load (or after 10 s), not at the next window's start.
    end = [max(starts[-1] + 1, min(starts[-1] + WINDOW_S, clock.last_s))] if starts else []
    x = clock.at([*starts, *end])
    figure = go.Figure()
    for column, label, line in (
            ("target_per_s", "target", {"color": "#8c959f", "width": 6}),
            ("achieved_per_s", "achieved", {"color": COLOURS[0], "width": 2})):
        values = [w.get(column) for w in windows]
        figure.add_trace(go.Scatter(x=x, y=[*values, *values[-1:]], name=label, line=line,
                                    line_shape="hv", mode="lines"))
    figure.update_yaxes(title_text="sessions/s", rangemode="tozero")
    figure.update_layout(title="Sessions per second: target (wide grey) vs achieved, "
                               "per 10 s of load", height=320)
    return figure


def latency(requests: Requests, clock: Clock, sides: list[str]) -> go.Figure:
    """p50/p95/p99 of the main steps, one panel each; a menu shows one step at a time."""
    figure = make_subplots(rows=len(PERCENTILES), cols=1, shared_xaxes=True,
                           vertical_spacing=0.07,
                           subplot_titles=[f"p{p}" for p in PERCENTILES])
    window = clock.window(requests.t)
    trace_steps: list[str] = []
    for colour, step in zip(COLOURS, MAIN_STEPS, strict=False):
        for side in sides:
            mask = (requests.name == step) & (requests.side == side)
            ids, groups = _groups(window[mask], requests.ms[mask])
            kept = [i for i, g in enumerate(groups) if len(g) >= MIN_SAMPLES]
            if not kept:
                continue
            values = np.array([np.percentile(groups[i], PERCENTILES) for i in kept])
            x = clock.middles(ids[kept])
            for row, _ in enumerate(PERCENTILES):
                figure.add_trace(go.Scatter(
                    x=x, y=values[:, row], name=f"{step} ({side})", mode="lines+markers",
                    marker={"size": 4}, legendgroup=f"{step}{side}", showlegend=row == 0,
                    line={"color": colour, "dash": SIDE_DASH.get(side, "solid")}),
                    row=row + 1, col=1)
                trace_steps.append(step)
    shown = [s for s in MAIN_STEPS if s in trace_steps]
    buttons = [{"label": "all steps", "method": "restyle",
                "args": [{"visible": [True] * len(trace_steps)}]}]
    buttons += [{"label": step, "method": "restyle",
                 "args": [{"visible": [s == step for s in trace_steps]}]} for step in shown]
    figure.update_yaxes(title_text="ms", rangemode="tozero")
    figure.update_layout(
        title=f"Latency by step (client side), per {clock.label}; windows with fewer than "
              f"{MIN_SAMPLES} requests left out", height=760,
        updatemenus=[{"buttons": buttons, "direction": "down", "x": 1.0, "xanchor": "right",
                      "y": 1.08, "yanchor": "bottom", "showactive": True}])
    return figure


def errors(requests: Requests, clock: Clock, sides: list[str]) -> go.Figure:
    figure = go.Figure()
    window = clock.window(requests.t)
    totals = []
    for side in sides:
        mask = requests.side == side
        ids, failed = _groups(window[mask], requests.failed[mask])
        _, server = _groups(window[mask], requests.server_error[mask])
        x = clock.middles(ids)
        for label, flags, colour in (("failed", failed, COLOURS[3]), ("5xx", server, COLOURS[4])):
            counts = [int(f.sum()) for f in flags]
            figure.add_trace(go.Scatter(
                x=x, y=counts, name=f"{label} ({side})", mode="lines+markers",
                marker={"size": 4},
                line={"color": colour, "dash": SIDE_DASH.get(side, "solid")}))
            totals.append(f"{label} {side} {sum(counts)}")
    figure.update_yaxes(title_text="requests", rangemode="nonnegative")
    figure.update_layout(title=f"Failed requests and 5xx per {clock.label} "
                               f"(in all: {', '.join(totals)})", height=340)
    return figure


def orders(sessions: list[dict], clock: Clock, sides: list[str]) -> go.Figure:
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    for side in sides:
        mine = [s for s in sessions if s["side"] == side]
        dash = SIDE_DASH.get(side, "solid")
        for column, label, colour in (("ordered_s", "orders placed", COLOURS[0]),
                                      ("paid_s", "orders paid", COLOURS[2]),
                                      ("completed_s", "picked up / delivered", COLOURS[1])):
            times = np.array([float(s[column]) for s in mine if s[column]])
            ids, counts = np.unique(clock.window(times), return_counts=True)
            figure.add_trace(go.Scatter(x=clock.middles(ids), y=counts, name=f"{label} ({side})",
                                        mode="lines+markers", marker={"size": 4},
                                        line={"color": colour, "dash": dash}))
        paid = [(float(s["paid_s"]), int(s["gmv_fen"] or 0)) for s in mine if s["paid_s"]]
        ids, fen = _groups(clock.window(np.array([p[0] for p in paid])),
                           np.array([p[1] for p in paid], dtype=np.int64))
        figure.add_trace(go.Scatter(x=clock.middles(ids), y=[int(f.sum()) / 100 for f in fen],
                                    name=f"GMV ¥ ({side})", mode="lines+markers",
                                    marker={"size": 4}, line={"color": COLOURS[6], "dash": dash}),
                         secondary_y=True)
    figure.update_yaxes(title_text="orders per window", secondary_y=False,
                        rangemode="nonnegative")
    figure.update_yaxes(title_text="GMV, yuan per window", secondary_y=True,
                        rangemode="nonnegative", showgrid=False)
    figure.update_layout(title=f"Orders, payments and GMV per {clock.label}", height=380)
    return figure


def funnel(sessions: list[dict], sides: list[str]) -> go.Figure:
    """Sessions that reached at least each stage, per persona (Chinese name and key)."""
    names = {p.key: f"{p.name} {p.key}" for p in tables.personas()}
    rank = {stage: i for i, stage in enumerate(STAGES)}
    personas = sorted({s["persona"] for s in sessions})
    figure = make_subplots(rows=1, cols=len(sides), shared_yaxes=True, subplot_titles=sides,
                           horizontal_spacing=0.04)
    for col, side in enumerate(sides, start=1):
        reached = {(p, stage): 0 for p in personas for stage in STAGES}
        for s in sessions:
            if s["side"] == side:
                for stage in STAGES[:rank.get(s["stage"], 0) + 1]:
                    reached[s["persona"], stage] += 1
        for colour, stage in zip(COLOURS, SHOWN_STAGES, strict=False):
            figure.add_trace(go.Bar(x=[names.get(p, p) for p in personas],
                                    y=[reached[p, stage] for p in personas], name=stage,
                                    marker_color=colour, legendgroup=stage,
                                    showlegend=col == 1), row=1, col=col)
    figure.update_layout(title="Funnel by persona: sessions reaching each stage",
                         barmode="group", height=420, margin={"t": 90})
    return figure


def tolerance_value(text: str) -> float | None:
    """The number in the gate's tolerance text ("+1.20 ms", "-1 points", "-5%"), in the
    units of its forest panel."""
    match = re.search(r"[-+]?\d+(\.\d+)?", text or "")
    return float(match[0]) if match else None


def forest(metrics: list[dict]) -> go.Figure | None:
    """Each compared metric's effect and interval against its tolerance, one panel per kind
    of effect (their units differ); None when no metric has an effect to show."""
    panels = {kind: [m for m in metrics if m.get("kind") == kind
                     and isinstance(m.get("effect"), int | float)] for kind in FOREST_KINDS}
    panels = {kind: shown for kind, shown in panels.items() if shown}
    if not panels:
        return None
    heights = [len(shown) + 1.5 for shown in panels.values()]
    figure = make_subplots(rows=len(panels), cols=1, vertical_spacing=0.3 / len(panels),
                           row_heights=heights,
                           subplot_titles=[FOREST_KINDS[kind][0] for kind in panels])
    for row, (kind, shown) in enumerate(panels.items(), start=1):
        factor = FOREST_KINDS[kind][1]
        for m in shown:
            effect = m["effect"] * factor
            low, high = (v * factor for v in (m.get("interval") or [m["effect"]] * 2))
            figure.add_trace(go.Scatter(
                x=[effect], y=[m.get("key", "?")], mode="markers", showlegend=False,
                marker={"color": CLASS_COLOUR.get(m.get("classification"), "#57606a"),
                        "size": 10},
                error_x={"type": "data", "symmetric": False, "array": [high - effect],
                         "arrayminus": [effect - low], "thickness": 2},
                hovertext=str(m.get("reason", "")), hoverinfo="text"), row=row, col=1)
            tolerance = tolerance_value(str(m.get("tolerance", "")))
            if tolerance is not None:
                figure.add_trace(go.Scatter(
                    x=[tolerance], y=[m.get("key", "?")], mode="markers", showlegend=False,
                    marker={"symbol": "line-ns-open", "size": 22, "color": "#cf222e",
                            "line": {"width": 3}},
                    hovertext=f"tolerance {m.get('tolerance')}", hoverinfo="text"),
                    row=row, col=1)
        figure.add_vline(x=0, line={"color": "#8c959f", "width": 1}, row=row, col=1)
    figure.update_yaxes(automargin=True)
    figure.update_layout(
        title="Each compared metric: effect with its interval (dot and bar, coloured by "
              "classification) and its tolerance (red tick)",
        height=int(140 + 46 * sum(heights)))
    return figure
