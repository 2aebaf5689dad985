"""The marketing panel of report.html: what coupons, flash sales, group buys, refunds, member
points and risk control did on each side, from each mall's last scrape (`mall-<side>.prom`)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

# (what the row says, the counter, the labels that split it)
COUNTERS = (
    ("coupons claimed", "mall_coupon_claims_total", ()),
    ("coupons", "mall_coupon_redemptions_total", ("change",)),
    ("coupon refusals", "mall_coupon_refusals_total", ("reason",)),
    ("flash-sale units", "mall_flash_sale_units_total", ("change",)),
    ("flash-sale refusals", "mall_flash_sale_refusals_total", ("reason", "answered_from")),
    ("groups", "mall_groups_total", ("change",)),
    ("refunds", "mall_refunds_total", ("change", "reason")),
    ("member points", "mall_points_total", ("change",)),
    ("risk refusals", "mall_risk_rejections_total", ("rule",)),
)


def _samples(path: Path) -> dict[tuple[str, tuple[str, ...]], float]:
    """(sample name, label values in COUNTERS' order) -> value, for the counters above."""
    wanted = {name: labels for _, name, labels in COUNTERS}
    found: dict[tuple[str, tuple[str, ...]], float] = {}
    if not path.exists():
        return found
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for sample in family.samples:
            if sample.name in wanted:
                key = tuple(sample.labels.get(label, "") for label in wanted[sample.name])
                found[(sample.name, key)] = sample.value
    return found


def marketing_rows(report_dir: Path, sides: list[str]) -> list[list[str]]:
    """One row per counter and label set that moved on some side: [what, side values...]."""
    by_side = {side: _samples(report_dir / f"mall-{side}.prom") for side in sides}
    rows = []
    for title, name, _ in COUNTERS:
        keys = sorted({key for samples in by_side.values() for (sample, key) in samples
                       if sample == name})
        for key in keys:
            values = [by_side[side].get((name, key), 0.0) for side in sides]
            if any(values):
                what = f"{title}: {', '.join(key)}" if key else title
                rows.append([what, *(f"{value:,.0f}" for value in values)])
    return rows
