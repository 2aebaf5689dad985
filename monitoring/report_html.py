"""`report.html`: the page a release manager reads after a run.  One self-contained file:
plotly's script is embedded once and every chart's data inline, so it opens offline and makes
no network request.  The verdict comes first; then arrivals, latency, errors and orders over
simulated time, the funnel by persona, for a paired run each compared metric with its
interval against its tolerance, and the run's facts.  The charts are in `report_charts.py`."""

from __future__ import annotations

import html
import json
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from . import report_charts as charts
from .gate import HEADER, rows
from .marketing import marketing_rows

VERDICT_COLOUR = {"promote": "#1a7f37", "pass": "#1a7f37", "hold": "#9a6700",
                  "rollback": "#cf222e", "fail": "#cf222e"}
GATE_HEADER = [*HEADER[:4], "effect", "interval", "p", *HEADER[4:]]
CSS = """
body{font-family:-apple-system,"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;
margin:24px auto;max-width:1200px;color:#1f2328;padding:0 16px}
h1{margin:0 0 4px;font-size:26px}h2{margin:32px 0 8px;border-bottom:1px solid #d0d7de;
padding-bottom:4px}
.verdict{font-size:30px;font-weight:700;padding:12px 20px;border-radius:8px;color:#fff;
display:inline-block;margin:8px 0}
table{border-collapse:collapse;font-size:13px;width:100%}th,td{border:1px solid #d0d7de;
padding:4px 6px;text-align:left;vertical-align:top}th{background:#f6f8fa}
td.fail{color:#cf222e;font-weight:700}td.inconclusive{color:#9a6700;font-weight:700}
td.pass{color:#1a7f37}.deciding{margin:4px 0 12px;font-size:14px}.note{color:#57606a;font-size:13px}
"""


def _figure_html(figure: go.Figure, name: str) -> str:
    figure.update_layout(template="plotly_white",
                         margin={"l": 60, "r": 20, "b": 40, "t": figure.layout.margin.t or 60},
                         font={"family": "Noto Sans CJK SC, sans-serif"})
    return pio.to_html(figure, include_plotlyjs=False, full_html=False, div_id=name,
                       config={"displaylogo": False, "responsive": True})


def _table(header: list[str], body: list[list], classes: list[str] | None = None) -> str:
    """An HTML table; `classes` colours each row's second cell (its result)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    lines = []
    for i, row in enumerate(body):
        cells = []
        for j, cell in enumerate(row):
            css = f' class="{html.escape(classes[i])}"' if classes and j == 1 else ""
            cells.append(f"<td{css}>{html.escape(str(cell))}</td>")
        lines.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(lines)}</table>"


def _signed(value: object, unit: str) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:+.1%}" if unit == "relative" else f"{value:+.3g} {unit}".rstrip()


def _gate_rows(metrics: list[dict]) -> list[list[str]]:
    """The gate's own rows (its wording of each side's numbers), with the effect, its
    interval and the unadjusted p beside them, which the release manager weighs too."""
    mine = []
    for m, row in zip(metrics, rows({"metrics": metrics}), strict=True):
        unit = str(m.get("effect_unit", ""))
        interval = m.get("interval") or []
        shown = ("[" + ", ".join(_signed(v, unit) for v in interval) + "]") if interval else "-"
        p = m.get("p_value")
        mine.append([*row[:4], _signed(m.get("effect"), unit), shown,
                     "-" if p is None else f"{p:.2g}", *row[4:]])
    return mine


def _verdict_section(verdict: dict) -> str:
    gate = verdict.get("gate")
    if gate:
        word = str(gate.get("verdict", "unknown"))
        metrics = gate.get("metrics") or []
        deciding = "".join(f"<li>{html.escape(str(d))}</li>" for d in gate.get("deciding") or [])
        prometheus = verdict.get("gate_prometheus")
        agreement = (f"<p class=note>Judged again from Prometheus: "
                     f"{html.escape(str(prometheus.get('verdict')))}, "
                     f"{'the same' if prometheus.get('same_classification') else 'a DIFFERENT'}"
                     " classification for every metric.</p>") if prometheus else ""
        note = (f"<p class=note>Family-wise false-rollback rate {gate.get('alpha', 0):.0%} over "
                f"{gate.get('compared', '?')} tested metrics (Holm); one look, when the load "
                "ended.  Effects and intervals are canary - baseline.</p>")
        table = _table(GATE_HEADER, _gate_rows(metrics),
                       [str(m.get("classification", "")) for m in metrics])
        return (f'<div id=verdict class=verdict style="background:'
                f'{VERDICT_COLOUR.get(word, "#57606a")}">{html.escape(word.upper())}</div>'
                f"<ul class=deciding>{deciding or '<li>every compared metric passes</li>'}</ul>"
                f"{agreement}{note}{table}")
    results = verdict["sides"]["baseline"].get("thresholds") or []
    word = "pass" if verdict.get("passed") else "fail"
    table = _table(["threshold", "result", "observed"],
                   [[r.get("threshold"), "pass" if r.get("passed") else "fail",
                     r.get("observed")] for r in results],
                   ["pass" if r.get("passed") else "fail" for r in results])
    return (f'<div id=verdict class=verdict style="background:{VERDICT_COLOUR[word]}">'
            f"{word.upper()}</div>{table}")


def _marketing(report_dir: Path, sides: list[str]) -> str:
    counted = marketing_rows(report_dir, sides)
    if not counted:
        return ("<p class=note>No coupon, flash sale, group buy, refund or risk refusal in "
                "this run.</p>")
    return _table(["counter (the mall's, at the end of the run)", *sides], counted)


def _facts(verdict: dict) -> str:
    facts = verdict["facts"]
    sessions = verdict.get("sessions") or {}
    body = [["scenario", verdict["scenario"]], ["window", facts["window"]],
            ["speed", f"{facts['speed']:g}x ({facts['real_seconds']:.0f} s of load)"],
            ["city", facts["city"]], ["wall time", f"{facts['wall_seconds']} s"],
            ["sessions", f"{sessions.get('started')} started of {sessions.get('scheduled')} "
                         f"scheduled, {sessions.get('late')} late"]]
    for side, data in verdict["sides"].items():
        build = data.get("build") or {}
        faults = f", fault profile {build['faults']}" if build.get("faults") else ""
        body.append([f"{side} build", f"{build.get('build')} ({build.get('kind')}, commit "
                                      f"{str(build.get('commit'))[:12]}){faults}"])
    return _table(["fact", "value"], body)


def write_report(report_dir: Path) -> Path:
    """Write `report_dir/report.html` from the run's files there; verdict.json must exist."""
    verdict = json.loads((report_dir / "verdict.json").read_text(encoding="utf-8"))
    client = json.loads((report_dir / "client.json").read_text(encoding="utf-8"))
    requests = charts.Requests.read(report_dir / "requests.csv.gz")
    sessions = charts.read_sessions(report_dir / "sessions.csv.gz")
    clock = charts.Clock(verdict["facts"], float(requests.t.max(initial=0)))
    sides = list(verdict["sides"])
    sections = [("Arrivals", "arrivals", charts.arrivals(client, clock)),
                ("Latency", "latency", charts.latency(requests, clock, sides)),
                ("Errors", "errors", charts.errors(requests, clock, sides)),
                ("Orders, payments and GMV", "orders", charts.orders(sessions, clock, sides)),
                ("Funnel by persona", "funnel", charts.funnel(sessions, sides))]
    gate = verdict.get("gate")
    if gate:
        sections.append(("Compared metrics: intervals", "forest",
                         charts.forest(gate.get("metrics") or [])))
    parts = []
    for title, name, figure in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(_figure_html(figure, name) if figure is not None else
                     "<p class=note>No compared metric had enough samples for an effect and "
                     "an interval.</p>")
    parts.append(f"<h2 id=marketing>Marketing</h2>{_marketing(report_dir, sides)}")
    legend = "Solid lines: baseline; dashed: canary.  " if gate else ""
    title = f"xingcheng run {verdict['scenario']} — {verdict['run']}"
    page = f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script></head>
<body><h1>{html.escape(title)}</h1>
{_verdict_section(verdict)}
{"".join(parts)}
<h2>Facts</h2>{_facts(verdict)}
<p class=note>{legend}Times are the scenario's simulated clock (Asia/Shanghai).  Written by
xingcheng; opens offline.</p>
</body></html>
"""
    path = report_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
