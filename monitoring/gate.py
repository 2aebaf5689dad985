"""The release gate: may the canary reach the stores?  Each compared metric is classified
pass / fail / inconclusive with the numbers behind it, and the verdict follows: rollback if
any metric fails, hold if any is inconclusive, promote otherwise.

A metric fails only when the canary is worse than the baseline, significantly, by more than
its tolerance: each test's null hypothesis is "worse by at most the tolerance", so a real but
harmless difference does not roll a release back.  The false-rollback rate holds for the
whole decision: Holm's correction over every metric compared, at 1 - confidence.  The gate
looks once, when the load has ended.  Too few samples on either side is inconclusive, never
a guess.  Tests come from scipy and statsmodels:

- latency per step: Mann-Whitney U of (canary - tolerance) against the baseline, with the
  Hodges-Lehmann shift and its Lehmann interval, on the histogram buckets;
- rates: a two-proportion z-test with the tolerance as the null difference and a Newcombe
  interval; Fisher's exact test when an expected cell count is below 5;
- values per session (GMV, basket size): Mann-Whitney U of the canary scaled by
  1 + tolerance, and a bootstrap interval of the relative difference of means;
- invariants (oversold units) and the scenario's own thresholds: absolute."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from .gate_inputs import Buckets, SideData, by_side

EXIT = {"promote": 0, "rollback": 1, "hold": 3}
DEFAULT_STEPS = ("login", "nearby_stores", "catalogue", "product", "create_order", "pay",
                 "order_status")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Share = Annotated[float, Field(ge=0, le=1)]


class RateTolerances(_Strict):
    """Absolute tolerances (0.01 = one percentage point worse)."""

    http_req_failed: Share = 0.005
    http_5xx: Share = 0.0
    payment_success: Share = 0.01
    order_completion: Share = 0.02
    conversion: Share = 0.03


class ValueTolerances(_Strict):
    """Relative tolerances (0.05 = 5% lower)."""

    gmv_per_session: Share = 0.05
    basket_size: Share = 0.05


class GateSettings(_Strict):
    confidence: Annotated[float, Field(ge=0.5, lt=1)] = 0.95
    min_samples: Annotated[int, Field(ge=1)] = 100
    min_sessions: Annotated[int, Field(ge=1)] = 100
    latency_steps: list[str] = list(DEFAULT_STEPS)
    latency_tolerance: Share = 0.10
    latency_tolerance_ms: Annotated[float, Field(ge=0)] = 2.0
    rates: RateTolerances = RateTolerances()
    values: ValueTolerances = ValueTolerances()


@dataclass
class Judged:
    key: str
    kind: str                      # latency | rate | value | invariant | threshold
    classification: str = "pass"   # pass | fail | inconclusive
    baseline: dict = field(default_factory=dict)
    canary: dict = field(default_factory=dict)
    effect: float | None = None
    effect_unit: str = ""
    interval: list[float] | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    tolerance: str = ""
    reason: str = ""
    # A Fisher test is no test of the margin: it must also be beyond the tolerance.
    needs_margin: bool = field(default=False, repr=False)
    margin_exceeded: bool = field(default=True, repr=False)


def _expand(buckets: Buckets) -> np.ndarray:
    values, counts = buckets.counts()
    return np.repeat(np.asarray(values, dtype=float), counts)


def _weighted_quantiles(diffs: np.ndarray, weights: np.ndarray, qs: list[float]) -> list[float]:
    order = np.argsort(diffs)
    cumulative = np.cumsum(weights[order])
    total = cumulative[-1]
    return [float(diffs[order][min(np.searchsorted(cumulative, q * total), len(diffs) - 1)])
            for q in qs]


def hodges_lehmann(baseline: Buckets, canary: Buckets, level: float) -> tuple[float, list]:
    """The median of canary - baseline over all pairs, and Lehmann's interval, from buckets
    (exact for binned data: pairs of buckets weighted by the product of their counts)."""
    bv, bc = baseline.counts()
    cv, cc = canary.counts()
    diffs = (np.asarray(cv)[None, :] - np.asarray(bv)[:, None]).ravel()
    weights = (np.asarray(cc, dtype=float)[None, :] * np.asarray(bc, dtype=float)[:, None]).ravel()
    n, m = sum(bc), sum(cc)
    z = stats.norm.ppf(1 - (1 - level) / 2)
    k = max(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12), 0)
    low, mid, high = _weighted_quantiles(diffs, weights, [k / (n * m), 0.5, 1 - k / (n * m)])
    return mid, [low, high]


def _latency(step: str, b: Buckets, c: Buckets, settings: GateSettings, level: float) -> Judged:
    judged = Judged(f"latency:{step}", "latency", effect_unit="ms")
    nb, nc = b.total, c.total
    judged.baseline, judged.canary = {"n": nb}, {"n": nc}
    if min(nb, nc) < settings.min_samples:
        judged.classification = "inconclusive"
        judged.reason = f"{min(nb, nc)} samples on one side, {settings.min_samples} needed"
        return judged
    base, can = _expand(b), _expand(c)
    median = float(np.median(base))
    tolerance = max(settings.latency_tolerance * median, settings.latency_tolerance_ms / 1000)
    judged.baseline["median_ms"] = round(median * 1000, 2)
    judged.canary["median_ms"] = round(float(np.median(can)) * 1000, 2)
    judged.tolerance = f"+{tolerance * 1000:.1f} ms"
    judged.p_value = float(stats.mannwhitneyu(can - tolerance, base,
                                              alternative="greater").pvalue)
    shift, interval = hodges_lehmann(b, c, level)
    judged.effect = round(shift * 1000, 2)
    judged.interval = [round(v * 1000, 2) for v in interval]
    judged.reason = (f"canary {judged.effect:+.1f} ms ({shift / median:+.0%}) "
                     f"[{judged.interval[0]:+.1f}, {judged.interval[1]:+.1f}]")
    return judged


def _rate(key: str, hits: tuple[float, float], trials: tuple[float, float], tolerance: float,
          higher_is_worse: bool, settings: GateSettings, level: float) -> Judged:
    """hits and trials are (baseline, canary)."""
    judged = Judged(f"rate:{key}", "rate", effect_unit="points")
    (hb, hc), (nb, nc) = (int(hits[0]), int(hits[1])), (int(trials[0]), int(trials[1]))
    judged.baseline = {"hits": hb, "trials": nb, "rate": round(hb / nb, 5) if nb else None}
    judged.canary = {"hits": hc, "trials": nc, "rate": round(hc / nc, 5) if nc else None}
    judged.tolerance = f"{'+' if higher_is_worse else '-'}{tolerance * 100:g} points"
    if min(nb, nc) < settings.min_samples:
        judged.classification = "inconclusive"
        judged.reason = f"{min(nb, nc)} trials on one side, {settings.min_samples} needed"
        return judged
    pb, pc = hb / nb, hc / nc
    worse_by = (pc - pb) if higher_is_worse else (pb - pc)
    judged.effect = round((pc - pb) * 100, 3)
    low, high = confint_proportions_2indep(hc, nc, hb, nb, compare="diff", method="newcombe",
                                           alpha=1 - level)
    judged.interval = [round(low * 100, 3), round(high * 100, 3)]
    total = nb + nc
    worse_hits = (hb, hc) if higher_is_worse else (nb - hb, nc - hc)
    column = worse_hits[0] + worse_hits[1]
    expected = min(nb, nc) * min(column, total - column) / total  # smallest expected cell
    if expected < 5:
        table = [[worse_hits[1], nc - worse_hits[1]], [worse_hits[0], nb - worse_hits[0]]]
        judged.p_value = float(stats.fisher_exact(table, alternative="greater").pvalue)
        judged.needs_margin, judged.margin_exceeded = True, worse_by > tolerance
        test = "Fisher"
    else:
        _, p = proportions_ztest([hc, hb], [nc, nb],
                                 value=tolerance if higher_is_worse else -tolerance,
                                 alternative="larger" if higher_is_worse else "smaller")
        judged.p_value = float(p) if not math.isnan(p) else 1.0
        test = "z"
    judged.reason = (f"{pb:.2%} -> {pc:.2%} ({judged.effect:+.2f} points, "
                     f"[{judged.interval[0]:+.2f}, {judged.interval[1]:+.2f}]; {test} test)")
    return judged


def _value(key: str, b: Buckets, c: Buckets, tolerance: float, settings: GateSettings,
           level: float, seed: int = 7) -> Judged:
    judged = Judged(f"value:{key}", "value", effect_unit="relative")
    base, can = _expand(b), _expand(c)
    judged.baseline, judged.canary = {"n": len(base)}, {"n": len(can)}
    judged.tolerance = f"-{tolerance:.0%}"
    if min(len(base), len(can)) < settings.min_sessions:
        judged.classification = "inconclusive"
        judged.reason = f"{min(len(base), len(can))} on one side, {settings.min_sessions} needed"
        return judged
    mean_b, mean_c = float(base.mean()), float(can.mean())
    judged.baseline["mean"], judged.canary["mean"] = round(mean_b, 3), round(mean_c, 3)
    if mean_b <= 0:
        judged.classification = "inconclusive"
        judged.reason = "the baseline's mean is 0"
        return judged
    judged.p_value = float(stats.mannwhitneyu(can * (1 + tolerance), base,
                                              alternative="less").pvalue)
    ci = stats.bootstrap((can, base), lambda x, y, axis=-1: x.mean(axis) / y.mean(axis) - 1,
                         n_resamples=999, method="percentile", confidence_level=level,
                         rng=np.random.default_rng(seed), vectorized=True).confidence_interval
    judged.effect = round(mean_c / mean_b - 1, 4)
    judged.interval = [round(float(ci.low), 4), round(float(ci.high), 4)]
    judged.reason = (f"mean {mean_b:.2f} -> {mean_c:.2f} ({judged.effect:+.1%}, "
                     f"[{judged.interval[0]:+.1%}, {judged.interval[1]:+.1%}])")
    return judged


def _invariant(baseline: SideData, canary: SideData) -> Judged:
    judged = Judged("invariant:oversold", "invariant", tolerance="0 units")
    judged.baseline, judged.canary = {"value": baseline.oversold}, {"value": canary.oversold}
    if canary.oversold is None:
        judged.classification, judged.reason = "inconclusive", "the canary's mall was not read"
    elif canary.oversold > 0:
        judged.classification = "fail"
        judged.reason = f"the canary oversold {canary.oversold:g} units"
    else:
        judged.reason = "no unit oversold"
    return judged


def _thresholds(results: dict[str, list[dict]]) -> list[Judged]:
    baseline = {r["threshold"]: r for r in results.get("baseline", [])}
    judged = []
    for result in results.get("canary", []):
        key = result["threshold"]
        item = Judged(f"threshold:{key}", "threshold", tolerance=key.split(": ", 1)[-1],
                      baseline={"observed": baseline.get(key, {}).get("observed")},
                      canary={"observed": result["observed"]})
        if result["passed"]:
            item.reason = "holds on the canary"
        elif baseline.get(key, {}).get("passed", True):
            item.classification, item.reason = "fail", "fails on the canary only"
        else:
            item.classification = "inconclusive"
            item.reason = "fails on the baseline too: the load or machine, not the build"
        judged.append(item)
    return judged


def judge(settings: GateSettings, samples, thresholds: dict[str, list[dict]] | None = None
          ) -> dict:
    """Classify every compared metric and give the verdict, as JSON-ready data."""
    sides = by_side(samples)
    if "baseline" not in sides or "canary" not in sides:
        raise ValueError(f"the gate needs a baseline and a canary; the samples have "
                         f"{sorted(sides) or 'no side'}")
    b, c = sides["baseline"], sides["canary"]
    alpha = 1 - settings.confidence
    compared = len(settings.latency_steps) + 5 + 2
    level = 1 - alpha / compared   # intervals as wide as the corrected tests
    rates = settings.rates
    judged = [_latency(step, b.latency.get(step, Buckets()), c.latency.get(step, Buckets()),
                       settings, level) for step in settings.latency_steps]
    judged += [
        _rate("http_req_failed", (b.failed, c.failed), (b.requests, c.requests),
              rates.http_req_failed, True, settings, level),
        _rate("http_5xx", (b.server_errors, c.server_errors), (b.requests, c.requests),
              rates.http_5xx, True, settings, level),
        _rate("payment_success", (b.funnel["paid"], c.funnel["paid"]),
              (b.funnel["paying"], c.funnel["paying"]), rates.payment_success, False,
              settings, level),
        _rate("order_completion", (b.funnel["completed"], c.funnel["completed"]),
              (b.funnel["paying"], c.funnel["paying"]), rates.order_completion, False,
              settings, level),
        _rate("conversion", (b.funnel["paid"], c.funnel["paid"]),
              (b.funnel["session"], c.funnel["session"]), rates.conversion, False,
              settings, level),
        _value("gmv_per_session", b.session_gmv, c.session_gmv,
               settings.values.gmv_per_session, settings, level),
        _value("basket_size", b.basket, c.basket, settings.values.basket_size, settings,
               level),
    ]
    tested = [j for j in judged if j.classification != "inconclusive" and j.p_value is not None]
    if tested:
        reject, adjusted, _, _ = multipletests([j.p_value for j in tested], alpha=alpha,
                                               method="holm")
        for item, rejected, p in zip(tested, reject, adjusted, strict=True):
            item.p_adjusted = float(p)
            if rejected and item.margin_exceeded:
                item.classification = "fail"
    judged.append(_invariant(b, c))
    judged += _thresholds(thresholds or {})
    failing = [j for j in judged if j.classification == "fail"]
    unsure = [j for j in judged if j.classification == "inconclusive"]
    verdict = "rollback" if failing else "hold" if unsure else "promote"
    deciding = failing if failing else unsure
    return {
        "verdict": verdict,
        "exit_code": EXIT[verdict],
        "deciding": [f"{j.key}: {j.reason}" for j in deciding],
        "settings": settings.model_dump(),
        "alpha": alpha,
        "compared": len(tested),
        "metrics": [{k: v for k, v in asdict(j).items()
                     if k not in ("needs_margin", "margin_exceeded")} for j in judged],
    }


def _numbers(side: dict) -> str:
    if "median_ms" in side:
        return f"{side['median_ms']} ms (n {side['n']})"
    if "rate" in side and side.get("rate") is not None:
        return f"{side['rate']:.2%} ({side['hits']}/{side['trials']})"
    if "mean" in side:
        return f"{side['mean']} (n {side['n']})"
    if "observed" in side:
        return str(side["observed"])
    if "value" in side:
        return str(side["value"])
    return f"n {side.get('n', side.get('trials', '-'))}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"


def rows(gate: dict) -> list[list[str]]:
    """One row per compared metric: what a person reads first."""
    return [[m["key"], m["classification"], _numbers(m["baseline"]), _numbers(m["canary"]),
             m["tolerance"], _p(m["p_adjusted"]), m["reason"]] for m in gate["metrics"]]


HEADER = ["metric", "result", "baseline", "canary", "tolerance", "p (Holm)", "why"]


def markdown(gate: dict) -> list[str]:
    lines = [f"## Gate: {gate['verdict'].upper()}", "",
             f"Family-wise false-rollback rate {gate['alpha']:.0%} over {gate['compared']} "
             "tested metrics (Holm); one look, when the load ended.", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows(gate):
        cells = [f"**{c}**" if c in ("fail", "inconclusive") else c for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def table(gate: dict):
    """The classification as a rich table for the terminal."""
    from rich.table import Table

    colours = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
    out = Table(title=f"gate: {gate['verdict']}", box=None, pad_edge=False)
    for name in HEADER:
        out.add_column(name, overflow="fold", no_wrap=name in ("result", "p (Holm)"))
    for row in rows(gate):
        row[1] = f"[{colours[row[1]]}]{row[1]}[/]"
        out.add_row(*row)
    return out
