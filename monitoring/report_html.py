"""`report.html`: the page a release manager reads after a run.  One self-contained file:
plotly's script is embedded once and every chart's data inline, so it opens offline and makes
no network request.  The verdict comes first; then arrivals, latency, errors and orders over
simulated time, the funnel by persona, and for a paired run each compared metric with its
interval against its tolerance."""

from __future__ import annotations

import csv
import gzip
import html
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from simulator import tables

WINDOW = 10                      # seconds of real time per point
MAIN_STEPS = ("login", "nearby_stores", "catalogue", "create_order", "pay", "order_status")
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
SIDE_DASH = {"baseline": "solid", "canary": "dash"}
STAGES = ("session", "viewed", "ordered", "paid", "completed")
VERDICT_COLOUR = {"promote": "#1a7f37", "pass": "#1a7f37", "hold": "#9a6700",
                  "rollback": "#cf222e", "fail": "#cf222e"}
CSS = """
body{font-family:-apple-system,"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;
margin:24px auto;max-width:1200px;color:#1f2328;padding:0 16px}
h1{margin:0 0 4px}h2{margin:32px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.verdict{font-size:28px;font-weight:700;padding:12px 16px;border-radius:8px;color:#fff;
display:inline-block;margin:8px 0}
table{border-collapse:collapse;font-size:13px;width:100%}th,td{border:1px solid #d0d7de;
padding:4px 6px;text-align:left;vertical-align:top}th{background:#f6f8fa}
td.fail{color:#cf222e;font-weight:700}td.inconclusive{color:#9a6700;font-weight:700}
td.pass{color:#1a7f37}.deciding{margin:4px 0 12px;font-size:14px}.note{color:#57606a;font-size:13px}
"""


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with gzip.open(path, "rt", encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


class Clock:
    """Real seconds since the load began, as the scenario's simulated instants."""

    def __init__(self, facts: dict) -> None:
        self.start = datetime.fromisoformat(facts["window"].split(" - ")[0])
        self.speed = float(facts["speed"])

    def at(self, seconds) -> list[datetime]:
        return [self.start + timedelta(seconds=float(s) * self.speed) for s in seconds]


def _figure_html(figure: go.Figure, name: str) -> str:
    figure.update_layout(template="plotly_white", margin={"l": 60, "r": 20, "t": 50, "b": 40},
                         font={"family": "Noto Sans CJK SC, sans-serif"})
    return pio.to_html(figure, include_plotlyjs=False, full_html=False, div_id=name,
                       config={"displaylogo": False, "responsive": True})


def arrivals(client: dict, clock: Clock) -> go.Figure:
    windows = client.get("arrival_windows", [])
    starts = clock.at(w["start_s"] for w in windows)
    figure = go.Figure([
        go.Scatter(x=starts, y=[w["target_per_s"] for w in windows], name="target",
                   line={"color": "#57606a", "dash": "dot"}),
        go.Scatter(x=starts, y=[w["achieved_per_s"] for w in windows], name="achieved",
                   line={"color": COLOURS[0]})])
    figure.update_layout(title="Sessions per second: target vs achieved (simulated time)",
                         yaxis_title="sessions/s", height=320)
    return figure


def _windows(times: np.ndarray) -> np.ndarray:
    return (times // WINDOW).astype(int)


def latency(requests: list[dict], clock: Clock, sides: list[str]) -> go.Figure:
    figure = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                           subplot_titles=("p50", "p95", "p99"))
    t = np.array([float(r["t_s"]) for r in requests])
    ms = np.array([float(r["ms"]) for r in requests])
    names = np.array([r["name"] for r in requests])
    side_of = np.array([r["side"] for r in requests])
    window = _windows(t) if len(t) else np.array([], dtype=int)
    for colour, step in zip(COLOURS, MAIN_STEPS, strict=False):
        for side in sides:
            mask = (names == step) & (side_of == side)
            if not mask.any():
                continue
            ids = np.unique(window[mask])
            values = [ms[mask & (window == w)] for w in ids]
            x = clock.at(ids * WINDOW + WINDOW / 2)
            for row, pct in enumerate((50, 95, 99), start=1):
                figure.add_trace(go.Scatter(
                    x=x, y=[float(np.percentile(v, pct)) for v in values],
                    name=f"{step} ({side})", legendgroup=f"{step}{side}", showlegend=row == 1,
                    line={"color": colour, "dash": SIDE_DASH.get(side, "solid")}),
                    row=row, col=1)
    figure.update_yaxes(title_text="ms")
    figure.update_layout(title="Latency by step over time (client side, per 10 s of load)",
                         height=720)
    return figure


def errors(requests: list[dict], clock: Clock, sides: list[str]) -> go.Figure:
    figure = go.Figure()
    t = np.array([float(r["t_s"]) for r in requests])
    failed = np.array([r["failed"] == "1" for r in requests])
    server = np.array([r["status"].startswith("5") for r in requests])
    side_of = np.array([r["side"] for r in requests])
    window = _windows(t) if len(t) else np.array([], dtype=int)
    for side in sides:
        mask = side_of == side
        ids = np.unique(window[mask])
        x = clock.at(ids * WINDOW + WINDOW / 2)
        for label, flags, colour in (("failed", failed, COLOURS[3]), ("5xx", server, COLOURS[4])):
            figure.add_trace(go.Scatter(
                x=x, y=[int((flags & mask & (window == w)).sum()) for w in ids],
                name=f"{label} ({side})", line={"color": colour,
                                                "dash": SIDE_DASH.get(side, "solid")}))
    figure.update_layout(title="Failed requests and 5xx per 10 s of load", height=320,
                         yaxis_title="requests")
    return figure


def orders(sessions: list[dict], clock: Clock, sides: list[str]) -> go.Figure:
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    for side in sides:
        mine = [s for s in sessions if s["side"] == side]
        for column, label, colour in (("ordered_s", "orders placed", COLOURS[0]),
                                      ("paid_s", "orders paid", COLOURS[2]),
                                      ("completed_s", "picked up / delivered", COLOURS[1])):
            times = np.array([float(s[column]) for s in mine if s[column]])
            ids, counts = np.unique(_windows(times), return_counts=True) if len(times) else (
                np.array([]), np.array([]))
            figure.add_trace(go.Scatter(x=clock.at(ids * WINDOW + WINDOW / 2), y=counts,
                                        name=f"{label} ({side})",
                                        line={"color": colour,
                                              "dash": SIDE_DASH.get(side, "solid")}))
        paid = [(float(s["paid_s"]), int(s["gmv_fen"])) for s in mine if s["paid_s"]]
        if paid:
            ids = _windows(np.array([p[0] for p in paid]))
            gmv = np.bincount(ids, weights=[p[1] / 100 for p in paid])
            x = clock.at(np.arange(len(gmv)) * WINDOW + WINDOW / 2)
            figure.add_trace(go.Scatter(x=x, y=gmv, name=f"GMV ¥ ({side})",
                                        line={"color": COLOURS[6],
                                              "dash": SIDE_DASH.get(side, "solid")}),
                             secondary_y=True)
    figure.update_yaxes(title_text="orders per 10 s", secondary_y=False)
    figure.update_yaxes(title_text="GMV, yuan per 10 s", secondary_y=True)
    figure.update_layout(title="Orders, payments and GMV over time", height=380)
    return figure


def funnel(sessions: list[dict], sides: list[str]) -> go.Figure:
    names = {p.key: f"{p.name} {p.key}" for p in tables.personas()}
    figure = make_subplots(rows=1, cols=len(sides), shared_yaxes=True,
                           subplot_titles=[f"{side}" for side in sides])
    order = {stage: i for i, stage in enumerate(("session", "viewed", "ordered", "paying",
                                                 "paid", "completed"))}
    personas = sorted({s["persona"] for s in sessions})
    for col, side in enumerate(sides, start=1):
        mine = [s for s in sessions if s["side"] == side]
        for colour, stage in zip(COLOURS, STAGES, strict=False):
            counts = [sum(1 for s in mine if s["persona"] == p
                          and order[s["stage"]] >= order[stage]) for p in personas]
            figure.add_trace(go.Bar(x=[names.get(p, p) for p in personas], y=counts,
                                    name=stage, marker_color=colour, legendgroup=stage,
                                    showlegend=col == 1), row=1, col=col)
    figure.update_layout(title="Funnel by persona: sessions reaching each stage",
                         barmode="group", height=380)
    return figure


def _tolerance(text: str) -> float | None:
    match = re.search(r"[-+]?\d+(\.\d+)?", text or "")
    if match is None:
        return None
    value = float(match[0])
    return value / 100 if text.strip().endswith("%") else value


def forest(gate: dict) -> go.Figure:
    """Each compared metric's effect with its interval, and its tolerance."""
    kinds = [("latency", "latency shift, ms (canary - baseline)"),
             ("rate", "rate difference, points"), ("value", "relative difference of means")]
    figure = make_subplots(rows=len(kinds), cols=1, vertical_spacing=0.12,
                           subplot_titles=[title for _, title in kinds])
    colours = {"pass": "#1a7f37", "fail": "#cf222e", "inconclusive": "#9a6700"}
    for row, (kind, _) in enumerate(kinds, start=1):
        metrics = [m for m in gate["metrics"] if m["kind"] == kind and m["effect"] is not None]
        for m in metrics:
            low, high = m["interval"] or (m["effect"], m["effect"])
            figure.add_trace(go.Scatter(
                x=[m["effect"]], y=[m["key"]], mode="markers", showlegend=False,
                marker={"color": colours[m["classification"]], "size": 9},
                error_x={"type": "data", "symmetric": False, "array": [high - m["effect"]],
                         "arrayminus": [m["effect"] - low]},
                hovertext=m["reason"]), row=row, col=1)
            tolerance = _tolerance(m["tolerance"])
            if tolerance is not None:
                figure.add_trace(go.Scatter(
                    x=[tolerance], y=[m["key"]], mode="markers", showlegend=False,
                    marker={"symbol": "line-ns-open", "size": 16, "color": "#57606a"},
                    hovertext=f"tolerance {m['tolerance']}"), row=row, col=1)
        figure.add_vline(x=0, line={"color": "#8c959f", "width": 1}, row=row, col=1)
    figure.update_layout(title="Each compared metric: effect, interval (dots and bars) and "
                               "tolerance (grey ticks)", height=760)
    return figure


def _table(header: list[str], rows: list[list], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, cell in enumerate(row):
            css = f' class="{classes[i]}"' if classes and j == 1 else ""
            cells.append(f"<td{css}>{html.escape(str(cell))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _verdict_section(verdict: dict) -> str:
    from .gate import HEADER, rows

    if verdict.get("mode") == "paired" and "gate" in verdict:
        gate = verdict["gate"]
        word = gate["verdict"]
        deciding = "".join(f"<li>{html.escape(d)}</li>" for d in gate["deciding"]) or \
            "<li>every compared metric passes</li>"
        prometheus = verdict.get("gate_prometheus")
        agreement = (f"<p class=note>Judged again from Prometheus: {prometheus['verdict']}, "
                     f"{'the same' if prometheus['same_classification'] else 'a DIFFERENT'} "
                     "classification for every metric.</p>") if prometheus else ""
        table = _table(HEADER, rows(gate), [m["classification"] for m in gate["metrics"]])
        note = (f"<p class=note>Family-wise false-rollback rate {gate['alpha']:.0%} over "
                f"{gate['compared']} tested metrics (Holm); one look, when the load ended.</p>")
        return (f'<div id=verdict class=verdict style="background:{VERDICT_COLOUR[word]}">'
                f"{word.upper()}</div><ul class=deciding>{deciding}</ul>{agreement}{note}{table}")
    results = verdict["sides"]["baseline"]["thresholds"]
    word = "pass" if verdict.get("passed") else "fail"
    table = _table(["threshold", "result", "observed"],
                   [[r["threshold"], "pass" if r["passed"] else "fail", r["observed"]]
                    for r in results], ["pass" if r["passed"] else "fail" for r in results])
    return (f'<div id=verdict class=verdict style="background:{VERDICT_COLOUR[word]}">'
            f"{word.upper()}</div>{table}")


def _facts(verdict: dict) -> str:
    facts = verdict["facts"]
    rows = [["scenario", verdict["scenario"]], ["window", facts["window"]],
            ["speed", f"{facts['speed']:g}x ({facts['real_seconds']:.0f} s of load)"],
            ["city", facts["city"]], ["wall time", f"{facts['wall_seconds']} s"],
            ["sessions", f"{verdict['sessions']['started']} started of "
                         f"{verdict['sessions']['scheduled']} scheduled, "
                         f"{verdict['sessions']['late']} late"]]
    for side, data in verdict["sides"].items():
        build = data["build"]
        rows.append([f"{side} build", f"{build['build']} ({build['kind']}, commit "
                                      f"{build['commit'][:12]})"
                                      + (f", fault profile {build['faults']}"
                                         if build.get("faults") else "")])
    return _table(["fact", "value"], rows)


def write_report(report_dir: Path) -> Path:
    verdict = json.loads((report_dir / "verdict.json").read_text(encoding="utf-8"))
    client = json.loads((report_dir / "client.json").read_text(encoding="utf-8"))
    requests = _rows(report_dir / "requests.csv.gz")
    sessions = _rows(report_dir / "sessions.csv.gz")
    clock = Clock(verdict["facts"])
    sides = list(verdict["sides"])
    figures = [("arrivals", arrivals(client, clock)),
               ("latency", latency(requests, clock, sides)),
               ("errors", errors(requests, clock, sides)),
               ("orders", orders(sessions, clock, sides)),
               ("funnel", funnel(sessions, sides))]
    if verdict.get("mode") == "paired" and "gate" in verdict:
        figures.append(("forest", forest(verdict["gate"])))
    charts = "\n".join(f"<h2>{html.escape(name)}</h2>{_figure_html(figure, name)}"
                       for name, figure in figures)
    title = f"xingcheng run {verdict['scenario']} — {verdict['run']}"
    page = f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script></head>
<body><h1>{html.escape(title)}</h1>
{_verdict_section(verdict)}
{charts}
<h2>facts</h2>{_facts(verdict)}
<p class=note>Solid lines: baseline; dashed: canary. Times are the scenario's simulated clock
(Asia/Shanghai). Written by xingcheng; opens offline.</p>
</body></html>
"""
    path = report_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
