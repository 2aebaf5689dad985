"""The gate's statistical comparisons of a canary with its baseline, one metric each.

Each comparison tests the null hypothesis "the canary is worse by at most the tolerance"
one-sided, so a p-value is evidence of a harmful difference, never of a harmless one; the
caller corrects the p-values for the whole family (Holm) and decides.  Intervals are
two-sided at the level the caller passes (the family's, so they are as wide as the
corrected tests).  Everything works on histogram buckets, since that is all Prometheus
keeps: a run judged from its recorded files and from PromQL must come out the same."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from .gate_inputs import Buckets

BOOTSTRAP_RESAMPLES = 999


@dataclass
class Judged:
    """One compared metric: its classification and the numbers behind it."""

    key: str
    kind: str                      # latency | rate | value | invariant | threshold
    classification: str = "pass"   # pass | fail | inconclusive
    baseline: dict = field(default_factory=dict)
    canary: dict = field(default_factory=dict)
    effect: float | None = None    # canary - baseline, in effect_unit
    effect_unit: str = ""
    effect_relative: float | None = None   # latency: the shift over the baseline's median
    interval: list[float] | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    tolerance: str = ""
    test: str = ""
    reason: str = ""
    # Fisher's test is of "no difference", not of the margin: a rejection fails the metric
    # only when the observed difference is beyond the tolerance too.
    beyond_tolerance: bool = field(default=True, repr=False)

    def too_few(self, have: int, need: int, what: str) -> Judged:
        self.classification = "inconclusive"
        self.reason = f"{have} {what} on one side, {need} needed"
        return self


def weighted_quantile(values: np.ndarray, weights: np.ndarray, rank: float) -> float:
    """The value at 1-based position `rank` of the data where each value occurs `weight`
    times."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, rank, side="left"))
    return float(values[order][min(index, len(values) - 1)])


def binned_median(buckets: Buckets) -> float:
    values, counts = buckets.counts()
    return weighted_quantile(values, counts.astype(float), counts.sum() / 2)


def hodges_lehmann(baseline: Buckets, canary: Buckets, level: float
                   ) -> tuple[float, tuple[float, float]]:
    """The Hodges-Lehmann shift (median of canary - baseline over all pairs) and its
    Lehmann/Moses interval, from the buckets: each pair of buckets stands for all its pairs of
    observations, weighted by the product of their counts, which is exact for binned data and
    costs buckets² (not n·m) differences.  The interval's ranks come from the normal
    approximation of U's null distribution without tie correction (slightly wide)."""
    bv, bc = baseline.counts()
    cv, cc = canary.counts()
    diffs = (cv[None, :] - bv[:, None]).ravel()
    weights = (cc[None, :].astype(float) * bc[:, None].astype(float)).ravel()
    n, m = float(bc.sum()), float(cc.sum())
    pairs = n * m
    z = stats.norm.ppf(1 - (1 - level) / 2)
    k = max(math.floor(pairs / 2 - z * math.sqrt(pairs * (n + m + 1) / 12)), 1)
    shift = weighted_quantile(diffs, weights, pairs / 2)
    low = weighted_quantile(diffs, weights, k)
    high = weighted_quantile(diffs, weights, pairs - k + 1)
    return shift, (low, high)


def latency(step: str, baseline: Buckets, canary: Buckets, relative: float, floor_ms: float,
            need: int, level: float) -> Judged:
    """Mann-Whitney U of (canary - tolerance) against the baseline, one-sided: significant
    only when the canary is slower by more than the tolerance, max(relative × the baseline's
    median, floor_ms)."""
    judged = Judged(f"latency:{step}", "latency", effect_unit="ms", test="Mann-Whitney U")
    nb, nc = baseline.total, canary.total
    judged.baseline, judged.canary = {"n": nb}, {"n": nc}
    if min(nb, nc) < need:
        return judged.too_few(min(nb, nc), need, "samples")
    median_b, median_c = binned_median(baseline), binned_median(canary)
    tolerance = max(relative * median_b, floor_ms / 1000)
    judged.baseline["median_ms"] = round(median_b * 1000, 3)
    judged.canary["median_ms"] = round(median_c * 1000, 3)
    judged.tolerance = f"+{tolerance * 1000:.2f} ms"
    judged.p_value = float(stats.mannwhitneyu(canary.expanded() - tolerance,
                                              baseline.expanded(),
                                              alternative="greater").pvalue)
    shift, (low, high) = hodges_lehmann(baseline, canary, level)
    judged.effect = round(shift * 1000, 3)
    judged.effect_relative = round(shift / median_b, 4) if median_b > 0 else None
    judged.interval = [round(low * 1000, 3), round(high * 1000, 3)]
    share = f" ({judged.effect_relative:+.0%})" if judged.effect_relative is not None else ""
    judged.reason = (f"canary {judged.effect:+.2f} ms{share} "
                     f"[{judged.interval[0]:+.2f}, {judged.interval[1]:+.2f}] "
                     f"on {judged.baseline['median_ms']:.2f} ms")
    return judged


def rate(key: str, hits: tuple[float, float], trials: tuple[float, float], tolerance: float,
         higher_is_worse: bool, need: int, level: float) -> Judged:
    """Two proportions, `hits` and `trials` as (baseline, canary).  A z-test with the
    tolerance as the null difference; Fisher's exact test when any expected cell of the 2x2
    table is below 5 (the z-test's normal approximation fails there) or when the tolerance
    is 0 (the null is then "no difference", which Fisher's test answers exactly at any size).
    After Fisher's test a rejection counts only if the observed difference is beyond the
    tolerance.  Newcombe's interval of the difference (canary - baseline), which stays
    inside [-1, 1] for rare events."""
    judged = Judged(f"rate:{key}", "rate", effect_unit="points")
    (hb, hc), (nb, nc) = (round(hits[0]), round(hits[1])), (round(trials[0]), round(trials[1]))
    judged.baseline = {"hits": hb, "trials": nb, "rate": round(hb / nb, 6) if nb else None}
    judged.canary = {"hits": hc, "trials": nc, "rate": round(hc / nc, 6) if nc else None}
    judged.tolerance = f"{'+' if higher_is_worse else '-'}{tolerance * 100:g} points"
    if min(nb, nc) < need:
        return judged.too_few(min(nb, nc), need, "trials")
    if not (0 <= hb <= nb and 0 <= hc <= nc):
        judged.classification = "inconclusive"
        judged.reason = f"inconsistent counts: {hb}/{nb} and {hc}/{nc}"
        return judged
    pb, pc = hb / nb, hc / nc
    worse_by = (pc - pb) if higher_is_worse else (pb - pc)
    judged.effect = round((pc - pb) * 100, 4)
    judged.interval = newcombe_points(hc, nc, hb, nb, level)
    # Counts of the worse outcome (failures, or customers who did not pay) per side.
    worse_b, worse_c = (hb, hc) if higher_is_worse else (nb - hb, nc - hc)
    column = worse_b + worse_c
    smallest_expected = min(nb, nc) * min(column, nb + nc - column) / (nb + nc)
    if smallest_expected < 5 or tolerance == 0:
        table = [[worse_c, nc - worse_c], [worse_b, nb - worse_b]]
        judged.p_value = float(stats.fisher_exact(table, alternative="greater").pvalue)
        judged.beyond_tolerance = worse_by > tolerance
        judged.test = "Fisher exact"
    else:
        _, p = proportions_ztest([hc, hb], [nc, nb],
                                 value=tolerance if higher_is_worse else -tolerance,
                                 alternative="larger" if higher_is_worse else "smaller")
        judged.p_value = 1.0 if math.isnan(p) else float(p)
        judged.test = "two-proportion z"
    judged.reason = (f"{pb:.2%} -> {pc:.2%}: {judged.effect:+.2f} points "
                     f"[{judged.interval[0]:+.2f}, {judged.interval[1]:+.2f}]")
    return judged


def newcombe_points(hits: int, trials: int, hits_compared: int, trials_compared: int,
                    level: float) -> list[float]:
    """Newcombe's interval of hits/trials - hits_compared/trials_compared, in percentage
    points: it stays inside [-100, 100] for rare events, where Wald's does not."""
    low, high = confint_proportions_2indep(hits, trials, hits_compared, trials_compared,
                                           compare="diff", method="newcombe", alpha=1 - level)
    return [round(float(low) * 100, 4), round(float(high) * 100, 4)]


def bootstrap_interval(statistic, sample: np.ndarray, compared: np.ndarray, level: float,
                       seed: int) -> tuple[float, float] | None:
    """A seeded percentile bootstrap interval of statistic(sample, compared, axis), so the
    same data is judged the same every time; None when a resample makes it undefined (a
    mean of 0 to divide by)."""
    interval = stats.bootstrap(
        (sample, compared), statistic, n_resamples=BOOTSTRAP_RESAMPLES, method="percentile",
        confidence_level=level, vectorized=True, batch=100,
        rng=np.random.default_rng(seed)).confidence_interval
    if not (math.isfinite(interval.low) and math.isfinite(interval.high)):
        return None
    return float(interval.low), float(interval.high)


def value(key: str, baseline: Buckets, canary: Buckets, tolerance: float, need: int,
          level: float, seed: int) -> Judged:
    """A per-session value where lower is worse.  Mann-Whitney U of the canary scaled up by
    1 / (1 - tolerance) against the baseline, one-sided, so that "lower by at most the
    tolerance" is the null exactly; a seeded bootstrap interval of the relative difference
    of means (canary / baseline - 1)."""
    judged = Judged(f"value:{key}", "value", effect_unit="relative",
                    test="Mann-Whitney U, bootstrap")
    base, can = baseline.expanded(), canary.expanded()
    judged.baseline, judged.canary = {"n": len(base)}, {"n": len(can)}
    judged.tolerance = f"-{tolerance:.0%}"
    if min(len(base), len(can)) < need:
        return judged.too_few(min(len(base), len(can)), need, "sessions")
    mean_b, mean_c = float(base.mean()), float(can.mean())
    judged.baseline["mean"], judged.canary["mean"] = round(mean_b, 4), round(mean_c, 4)
    if mean_b <= 0:
        judged.classification = "inconclusive"
        judged.reason = "the baseline's mean is 0: no relative difference"
        return judged
    judged.p_value = float(stats.mannwhitneyu(can / (1 - tolerance), base,
                                              alternative="less").pvalue)
    interval = bootstrap_interval(relative_difference_of_means, can, base, level, seed)
    judged.effect = round(mean_c / mean_b - 1, 5)
    judged.reason = f"mean {mean_b:.2f} -> {mean_c:.2f}: {judged.effect:+.1%}"
    if interval is not None:
        judged.interval = [round(interval[0], 5), round(interval[1], 5)]
        judged.reason += f" [{judged.interval[0]:+.1%}, {judged.interval[1]:+.1%}]"
    return judged


def relative_difference_of_means(sample: np.ndarray, compared: np.ndarray,
                                 axis: int = -1) -> np.ndarray:
    return sample.mean(axis) / compared.mean(axis) - 1


def difference_of_means(sample: np.ndarray, compared: np.ndarray,
                        axis: int = -1) -> np.ndarray:
    return sample.mean(axis) - compared.mean(axis)
