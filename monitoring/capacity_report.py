"""capacity.html: the capacity search as one self-contained page (plotly's script embedded,
no network request): achieved against target sessions per second at each step, the latency
the SLO judges, and which step broke and why."""

from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

HELD, BROKE = "#1a7f37", "#cf222e"


def write_capacity_report(folder: Path, result: dict) -> Path:
    steps = result["steps"]
    labels = [f"x{s['factor']:g}" for s in steps]
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                           subplot_titles=("sessions per second: achieved (bars) and target",
                                           "p95 latency, ms"))
    figure.add_trace(go.Bar(x=labels, y=[s["sessions_per_s"] for s in steps], name="achieved",
                            marker_color=[HELD if s["held"] else BROKE for s in steps],
                            text=["held" if s["held"] else "broke" for s in steps]),
                     row=1, col=1)
    figure.add_trace(go.Scatter(x=labels, y=[s["target_per_s"] for s in steps], name="target",
                                mode="lines+markers", line={"dash": "dot"}), row=1, col=1)
    for name in ("catalogue", "create_order", "pay"):
        figure.add_trace(go.Scatter(x=labels, y=[s["p95_ms"].get(name) for s in steps],
                                    name=f"p95 {name}", mode="lines+markers"), row=2, col=1)
    figure.update_layout(height=640, margin={"t": 60, "l": 60, "r": 20, "b": 40},
                         legend={"orientation": "h"})
    page = folder / "capacity.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>capacity "
        f"{html.escape(result['scenario'])}</title></head><body style='font-family:sans-serif'>"
        f"<h1>Capacity: {html.escape(result['scenario'])}</h1>"
        f"<p><b>{html.escape(result['summary'])}</b></p>"
        + figure.to_html(include_plotlyjs=True, full_html=False)
        + "</body></html>", encoding="utf-8")
    return page
