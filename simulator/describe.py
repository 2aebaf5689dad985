"""What a city looks like: counts by district and persona, and two pictures — the day's
traffic per persona, and the stores over Changsha coloured by district."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no screen needed
import matplotlib.pyplot as plt

from . import tables
from .geography import territory
from .traffic_curves import Traffic, daily_sessions


def traffic_picture(daily_orders: int, path: Path) -> Path:
    personas = tables.personas()
    fig, axes = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    hours = [m / 60 for m in range(1440)]
    for ax, day in zip(axes, ("weekday", "weekend"), strict=True):
        traffic = Traffic(day, daily_sessions(daily_orders))
        series = [traffic.per_minute(p.key) for p in personas]
        ax.stackplot(hours, *series, labels=[p.key for p in personas],
                     alpha=0.85)
        for name, peak in tables.peaks()["peak"].items():
            if peak.day != day:
                continue
            start, end = (tables.minutes(t) / 60 for t in peak.window)
            spans = [(start, end)] if start < end else [(start, 24), (0, end)]
            for a, b in spans:
                ax.axvspan(a, b, color="grey", alpha=0.12)
            ax.text(start + 0.1, ax.get_ylim()[1] * 0.92, name, fontsize=9)
        ax.set_title(f"Shopping sessions per minute, {day} "
                     f"({daily_sessions(daily_orders):,.0f} sessions/day)")
        ax.set_ylabel("sessions / minute")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8, ncol=2)
    axes[1].set_xlabel("hour of day (Asia/Shanghai)")
    axes[1].set_xticks(range(0, 25, 2))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


CORE = ((28.03, 28.32), (112.84, 113.13))  # the six urban districts, lat and lng


def store_map_picture(stores: list[tuple[float, float, str]], path: Path) -> Path:
    """`stores` as (lat, lng, district name): the whole city, and its urban core."""
    districts = tables.geography()[0]
    colours = dict(zip((d.name for d in districts), plt.cm.tab10.colors, strict=False))
    fig, (whole, core) = plt.subplots(1, 2, figsize=(15, 7.5),
                                      gridspec_kw={"width_ratios": [1.25, 1]})
    river = tables.river()
    for ax in (whole, core):
        ax.plot([p[1] for p in river], [p[0] for p in river], color="#5fa8d3", linewidth=3,
                alpha=0.6, label="Xiang River" if ax is whole else None)
        for d in districts:
            points = [(lat, lng) for lat, lng, name in stores if name == d.name]
            ax.scatter([p[1] for p in points], [p[0] for p in points], s=7, alpha=0.7,
                       color=colours[d.name],
                       label=f"{d.en} ({len(points)})" if ax is whole else None)
            ax.annotate(d.en, (d.centre[1], d.centre[0]), fontsize=9, weight="bold",
                        ha="center", clip_on=True)
        for place in territory().places:
            if place.kind in ("business_circle", "late_night_street", "campus"):
                ax.plot(place.at[1], place.at[0], marker="x", color="black", markersize=4)
        ax.set_xlabel("longitude (GCJ-02)")
        ax.set_aspect(1 / 0.882)  # 1 degree of longitude is ~0.88 of latitude here
        ax.grid(alpha=0.3)
    (lat_lo, lat_hi), (lng_lo, lng_hi) = CORE
    core.set_xlim(lng_lo, lng_hi)
    core.set_ylim(lat_lo, lat_hi)
    whole.add_patch(plt.Rectangle((lng_lo, lat_lo), lng_hi - lng_lo, lat_hi - lat_lo,
                                  fill=False, linestyle="--", color="grey"))
    whole.set_ylabel("latitude (GCJ-02)")
    whole.set_title(f"{len(stores)} stores over Changsha, by district")
    core.set_title("urban core (x: business circles, snack streets, campuses)")
    whole.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
