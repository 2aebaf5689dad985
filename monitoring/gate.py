"""The release gate: may the canary reach the stores?  Each compared metric is classified
pass / fail / inconclusive with the numbers behind it, and the verdict follows: rollback if
any metric fails, hold if any is inconclusive, promote otherwise.

A metric fails only when the canary is worse than the baseline, significantly, by more than
its tolerance (the tests in `comparisons.py` take "worse by at most the tolerance" as their
null hypothesis), so a real but harmless difference does not roll a release back.  The
false-rollback rate holds for the whole decision: Holm's correction over the metrics
actually tested, at 1 - confidence.  The gate looks once, when the load has ended: judging
the same run again and again as it goes would spend the false-rollback rate many times.
Too few samples on either side is inconclusive, never a guess.

Besides the tests: invariants (no unit oversold on the canary) and the scenario's own
thresholds, which are absolute and take no part in the correction."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Annotated, Literal

from prometheus_client.samples import Sample
from pydantic import BaseModel, ConfigDict, Field, field_validator
from statsmodels.stats.multitest import multipletests

from . import comparisons
from .comparisons import Judged
from .gate_inputs import Buckets, SideData, by_side

EXIT = {"promote": 0, "rollback": 1, "hold": 3}
Metric = Literal["latency", "http_req_failed", "http_5xx", "payment_success",
                 "order_completion", "conversion", "gmv_per_session", "basket_size", "oversold",
                 "thresholds"]
ALL_METRICS: tuple[Metric, ...] = Metric.__args__


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Share = Annotated[float, Field(ge=0, lt=1)]


class RateTolerances(_Strict):
    """Absolute tolerances of the rates (0.01 = one percentage point worse)."""

    http_req_failed: Share = 0.005
    http_5xx: Share = 0.0
    payment_success: Share = 0.01
    order_completion: Share = 0.02
    conversion: Share = 0.03


class ValueTolerances(_Strict):
    """Relative tolerances of the per-session values (0.05 = 5% lower)."""

    gmv_per_session: Share = 0.05
    basket_size: Share = 0.05


class GateSettings(_Strict):
    """A scenario's `[gate]` table."""

    confidence: Annotated[float, Field(ge=0.5, lt=1)] = 0.95
    min_samples: Annotated[int, Field(ge=1)] = 100
    min_sessions: Annotated[int, Field(ge=1)] = 100
    # None (the key left out): every step with min_samples on both sides.
    latency_steps: list[Annotated[str, Field(min_length=1)]] | None = None
    latency_tolerance: Share = 0.10
    latency_tolerance_ms: Annotated[float, Field(ge=0)] = 2.0
    rates: RateTolerances = RateTolerances()
    values: ValueTolerances = ValueTolerances()
    compare: list[Metric] = list(ALL_METRICS)
    seed: int = 7

    @field_validator("latency_steps", "compare")
    @classmethod
    def _once_each(cls, names: list[str] | None) -> list[str] | None:
        if names is not None and len(set(names)) != len(names):
            raise ValueError("names a metric or step twice")
        return names


@dataclass
class _Planned:
    """A statistical comparison to make, once the family's size (and so the intervals'
    level) is known."""

    enough: bool
    run: Callable[[float], Judged]


# Rates: key -> (hits, trials) of one side, and whether a higher rate is worse.
RATES: dict[str, tuple[Callable[[SideData], tuple[float, float]], bool]] = {
    "http_req_failed": (lambda s: (s.failed, s.requests), True),
    "http_5xx": (lambda s: (s.server_errors, s.requests), True),
    "payment_success": (lambda s: (s.funnel["paid"], s.funnel["paying"]), False),
    "order_completion": (lambda s: (s.funnel["completed"], s.funnel["paying"]), False),
    "conversion": (lambda s: (s.funnel["paid"], s.funnel["session"]), False),
}
VALUES: dict[str, Callable[[SideData], Buckets]] = {
    "gmv_per_session": lambda s: s.session_gmv,
    "basket_size": lambda s: s.basket,
}


def _steps(settings: GateSettings, b: SideData, c: SideData) -> tuple[list[str], list[str]]:
    """The latency steps to compare, and a note for each step left out by default."""
    if settings.latency_steps is not None:
        return list(settings.latency_steps), []
    steps, left_out = [], []
    for step in sorted(set(b.latency) | set(c.latency)):
        nb, nc = b.latency[step].total, c.latency[step].total
        if min(nb, nc) >= settings.min_samples:
            steps.append(step)
        else:
            left_out.append(f"latency:{step}: {nb} and {nc} samples, "
                            f"{settings.min_samples} needed on each side")
    return steps, left_out


def _plan(settings: GateSettings, b: SideData, c: SideData) -> tuple[list[_Planned], list[str]]:
    s, planned, left_out = settings, [], []
    if "latency" in s.compare:
        steps, left_out = _steps(s, b, c)
        for step in steps:
            bb, cb = b.latency.get(step, Buckets()), c.latency.get(step, Buckets())
            planned.append(_Planned(
                min(bb.total, cb.total) >= s.min_samples,
                lambda level, step=step, bb=bb, cb=cb: comparisons.latency(
                    step, bb, cb, s.latency_tolerance, s.latency_tolerance_ms, s.min_samples,
                    level)))
    for key, (counts, higher_is_worse) in RATES.items():
        if key in s.compare:
            (hb, nb), (hc, nc) = counts(b), counts(c)
            planned.append(_Planned(
                min(nb, nc) >= s.min_samples,
                lambda level, key=key, h=(hb, hc), n=(nb, nc), worse=higher_is_worse:
                    comparisons.rate(key, h, n, getattr(s.rates, key), worse, s.min_samples,
                                     level)))
    for key, buckets in VALUES.items():
        if key in s.compare:
            bb, cb = buckets(b), buckets(c)
            planned.append(_Planned(
                min(bb.total, cb.total) >= s.min_sessions,
                lambda level, key=key, bb=bb, cb=cb: comparisons.value(
                    key, bb, cb, getattr(s.values, key), s.min_sessions, level, s.seed)))
    return planned, left_out


def _oversold(baseline: SideData, canary: SideData) -> Judged:
    judged = Judged("invariant:oversold", "invariant", tolerance="0 units", test="absolute")
    judged.baseline, judged.canary = {"value": baseline.oversold}, {"value": canary.oversold}
    if canary.oversold is None:
        judged.classification = "inconclusive"
        judged.reason = "the canary mall's metrics were not read"
    elif canary.oversold > 0:
        judged.classification = "fail"
        judged.reason = f"the canary oversold {canary.oversold:g} units"
    else:
        judged.reason = "no unit oversold on the canary"
    return judged


def _thresholds(results: dict[str, list[dict]]) -> list[Judged]:
    """A scenario threshold breached on the canary alone is the build's doing; breached on
    both sides, it is the load's or the machine's, and says nothing about the build."""
    baseline = {r["threshold"]: r for r in results.get("baseline", [])}
    judged = []
    for result in results.get("canary", []):
        key = result["threshold"]
        theirs = baseline.get(key, {})
        item = Judged(f"threshold:{key}", "threshold", tolerance=key.split(": ", 1)[-1],
                      test="absolute", baseline={"observed": theirs.get("observed")},
                      canary={"observed": result.get("observed")})
        if result.get("passed"):
            item.reason = "holds on the canary"
        elif theirs.get("passed", True):
            item.classification, item.reason = "fail", "fails on the canary only"
        else:
            item.classification = "inconclusive"
            item.reason = "the baseline fails it too: the load or machine, not the build"
        judged.append(item)
    return judged


def judge(settings: GateSettings, samples: Iterable[Sample],
          thresholds: dict[str, list[dict]] | None = None) -> dict:
    """Classify every compared metric and give the verdict, as JSON-ready data.

    `samples` must hold both sides (ValueError otherwise); `thresholds` are the scenario's
    threshold results per side, as `{side: [{"threshold", "passed", "observed"}]}`."""
    sides = by_side(samples)
    if "baseline" not in sides or "canary" not in sides:
        raise ValueError(f"the gate needs a baseline and a canary; the samples have "
                         f"{', '.join(sorted(sides)) or 'no side'}")
    b, c = sides["baseline"], sides["canary"]
    alpha = 1 - settings.confidence
    planned, left_out = _plan(settings, b, c)
    tested = max(sum(p.enough for p in planned), 1)
    # Bonferroni's level for the intervals: at least as wide as Holm's tests need.
    judged = [p.run(1 - alpha / tested) for p in planned]
    family = [j for j in judged if j.classification != "inconclusive" and j.p_value is not None]
    if family:
        reject, adjusted, _, _ = multipletests([j.p_value for j in family], alpha=alpha,
                                               method="holm")
        for item, rejected, p in zip(family, reject, adjusted, strict=True):
            item.p_adjusted = float(p)
            if rejected and item.beyond_tolerance:
                item.classification = "fail"
                item.reason += f"; worse beyond {item.tolerance} (Holm p {p:.2g})"
    if "oversold" in settings.compare:
        judged.append(_oversold(b, c))
    if "thresholds" in settings.compare:
        judged += _thresholds(thresholds or {})
    failing = [j for j in judged if j.classification == "fail"]
    unsure = [j for j in judged if j.classification == "inconclusive"]
    verdict = "rollback" if failing else "hold" if unsure else "promote"
    return {
        "verdict": verdict,
        "exit_code": EXIT[verdict],
        "deciding": [f"{j.key}: {j.reason}" for j in (failing or unsure)],
        "settings": settings.model_dump(),
        "alpha": alpha,
        "compared": len(family),
        "looks": 1,
        "not_compared": left_out,
        "metrics": [{k: v for k, v in asdict(j).items() if k != "beyond_tolerance"}
                    for j in judged],
    }


def _numbers(side: dict) -> str:
    if "median_ms" in side:
        return f"{side['median_ms']:.2f} ms (n {side['n']})"
    if side.get("rate") is not None:
        return f"{side['rate']:.2%} ({side['hits']}/{side['trials']})"
    if "mean" in side:
        return f"{side['mean']:.2f} (n {side['n']})"
    if "observed" in side:
        return str(side["observed"])
    if "value" in side:
        return str(side["value"])
    return f"n {side.get('n', side.get('trials', '-'))}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"


HEADER = ["metric", "result", "baseline", "canary", "tolerance", "p (Holm)", "why"]


def rows(gate: dict) -> list[list[str]]:
    """One row per compared metric, in HEADER's order: what a person reads first."""
    return [[m["key"], m["classification"], _numbers(m["baseline"]), _numbers(m["canary"]),
             m["tolerance"], _p(m["p_adjusted"]), m["reason"]] for m in gate["metrics"]]


def _family_note(gate: dict) -> str:
    note = (f"Family-wise false-rollback rate {gate['alpha']:.0%} over {gate['compared']} "
            "tested metrics (Holm); one look, when the load ended.")
    if gate.get("not_compared"):
        note += f" Not compared (too few samples): {len(gate['not_compared'])} steps."
    return note


def markdown(gate: dict) -> list[str]:
    """The gate's part of summary.md."""
    lines = [f"## Gate: {gate['verdict'].upper()}", "", _family_note(gate), "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows(gate):
        cells = [f"**{c}**" if c in ("fail", "inconclusive") else c for c in row]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    if gate.get("not_compared"):
        lines += ["", *(f"- not compared: {note}" for note in gate["not_compared"])]
    return [*lines, ""]


def table(gate: dict):
    """The classification as a rich table for the terminal."""
    from rich.table import Table

    colours = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
    out = Table(title=f"gate: {gate['verdict']}", caption=_family_note(gate), box=None,
                pad_edge=False)
    for name in HEADER:
        out.add_column(name, overflow="fold", no_wrap=name in ("result", "p (Holm)"))
    for row in rows(gate):
        row[1] = f"[{colours[row[1]]}]{row[1]}[/]"
        out.add_row(*row)
    return out
