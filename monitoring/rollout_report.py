"""report.html of a rollout: one self-contained page (plotly's script embedded, no network
request) with the canary's part of the city over time, each step's verdict where it was
decided, the requests each side served per step, and the router's audit of every change."""

from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLOURS = {"promote": "#1a7f37", "served": "#1a7f37", "hold": "#9a6700",
           "rollback": "#cf222e", "running": "#57606a"}


def write_rollout_report(folder: Path, result: dict) -> Path:
    steps = result["steps"]
    figure = make_subplots(rows=2, cols=1, vertical_spacing=0.16,
                           subplot_titles=("canary's part of the city over the load (%)",
                                           "requests served per step"))
    times, parts = [], []
    for step in steps:
        times += [step["started_s"], step["ended_s"]]
        parts += [step["percent"], step["percent"]]
    rolled = next((s for s in steps if s["verdict"] == "rollback"), None)
    if rolled is not None:
        times.append(rolled["ended_s"])
        parts.append(0)
    figure.add_trace(go.Scatter(x=times, y=parts, mode="lines", name="canary %",
                                line={"shape": "hv"}), row=1, col=1)
    figure.add_trace(go.Scatter(
        x=[s["ended_s"] for s in steps], y=[s["percent"] for s in steps], mode="markers+text",
        text=[s["verdict"] for s in steps], textposition="top center", name="verdict",
        marker={"size": 12, "color": [COLOURS.get(s["verdict"], "#57606a") for s in steps]},
        hovertext=["; ".join(s["deciding"][:3]) or "every compared metric passes"
                   for s in steps]), row=1, col=1)
    labels = [f"{s['percent']}%" for s in steps]
    for side in ("baseline", "canary"):
        figure.add_trace(go.Bar(x=labels, y=[s["samples"].get(side, 0) for s in steps],
                                name=side), row=2, col=1)
    figure.update_xaxes(title_text="seconds of load", row=1, col=1)
    figure.update_yaxes(range=[-5, 110], row=1, col=1)
    figure.update_layout(height=700, margin={"t": 60, "l": 60, "r": 20, "b": 40},
                         legend={"orientation": "h"})
    rows = "".join(
        f"<tr><td>{s['percent']}%</td><td>{s['started_s']:.0f}-{s['ended_s'] or 0:.0f} s</td>"
        f"<td>{html.escape(s['verdict'])}</td>"
        f"<td>{html.escape('; '.join(s['deciding']))}</td></tr>" for s in steps)
    audit = "".join(
        f"<tr><td>{html.escape(a['at'])}</td><td>{html.escape(a['actor'])}</td>"
        f"<td>{html.escape(a['note'])}</td><td>{html.escape(str(a['to']))}</td></tr>"
        for a in result["router_audit"])
    checked = result["verify"]
    verify = ", ".join(f"{f['name']} {f['breaches']}" for f in checked["invariants"]) \
        or html.escape(checked.get("why", ""))
    page = folder / "report.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>rollout "
        f"{html.escape(result['scenario'])}</title></head>"
        "<body style='font-family:sans-serif;max-width:1100px;margin:auto'>"
        f"<h1>Rollout {html.escape(result['scenario'])} by {html.escape(result['by'])}: "
        f"{html.escape(result['outcome'].upper())} at {result['reached']}%</h1>"
        f"<p>{html.escape('; '.join(result['deciding']))}</p>"
        + figure.to_html(include_plotlyjs=True, full_html=False)
        + "<h2>Steps</h2><table border=1 cellpadding=4><tr><th>step</th><th>when</th>"
          "<th>verdict</th><th>deciding</th></tr>" + rows + "</table>"
        + f"<h2>xingcheng verify</h2><p>{verify}</p>"
        + "<h2>Router audit</h2><table border=1 cellpadding=4><tr><th>at</th><th>who</th>"
          "<th>note</th><th>rules</th></tr>" + audit + "</table></body></html>",
        encoding="utf-8")
    return page
