"""`xingcheng experiment REPORT_DIR`: each A/B experiment's arms as a run's customers met
them, from the run's `sessions.csv.gz`, each arm against the control (the first arm of the
experiment's definition).

Per arm: sessions, conversion (sessions that paid / sessions), basket (mean value paid by a
paying session) and GMV per session (mean value paid, 0 for sessions that paid nothing).
Each comparison gives the effect (arm - control) with its interval first, because "how much,
give or take" is what decides an experiment; the p-value is beside it.  Intervals are the
gate's: Newcombe's for the difference of two proportions, a seeded percentile bootstrap for
the difference of means.  The tests are two-sided (an arm may be better or worse): Fisher's
exact test for conversion, exact at any size; Welch's t-test for the means, which is a test
of the very difference of means the interval is of (a rank test, as the gate uses, tests
another thing and could disagree with the interval).  Each arm is compared once with the
control; with many arms or experiments, read the p-values as many looks."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from scipy import stats

from mall.experiments import SHIPPED, Experiment, ExperimentsError, load_experiments

from .comparisons import bootstrap_interval, difference_of_means, newcombe_points
from .report_charts import read_sessions

HARNESS = 2
MIN_SESSIONS = 100   # per arm and compared sample, like the gate's min_sessions
BOOTSTRAP_SEED = 7   # the same folder is reported the same every time


class NotReportable(ValueError):
    """A folder with nothing to report: the message says what is missing."""


@dataclass
class ArmFigures:
    arm: str
    sessions: int
    paying: int
    conversion: float | None
    basket_yuan: float | None
    gmv_per_session_yuan: float | None


@dataclass
class Effect:
    """One metric of one arm against the control."""

    arm: str
    metric: str                     # conversion | basket | gmv_per_session
    unit: str                       # points | yuan
    effect: float | None = None     # arm - control
    interval: list[float] | None = None
    relative: float | None = None   # the effect over the control's figure
    p_value: float | None = None
    test: str = ""
    verdict: str = "inconclusive"   # higher | lower | no difference shown | inconclusive
    reason: str = ""


@dataclass
class ExperimentReport:
    key: str
    control: str
    arms: list[ArmFigures] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)


@dataclass
class _Arm:
    """One arm's sessions: whether each paid, and what (fen)."""

    paid: list[bool] = field(default_factory=list)
    gmv_fen: list[int] = field(default_factory=list)

    def figures(self, name: str) -> ArmFigures:
        n, paying = len(self.paid), sum(self.paid)
        paid_fen = [g for g, p in zip(self.gmv_fen, self.paid, strict=True) if p]
        return ArmFigures(name, n, paying, round(paying / n, 6) if n else None,
                          round(float(np.mean(paid_fen)) / 100, 2) if paid_fen else None,
                          round(float(np.mean(self.gmv_fen)) / 100, 4) if n else None)

    def values_yuan(self, paying_only: bool) -> np.ndarray:
        return np.asarray([g for g, p in zip(self.gmv_fen, self.paid, strict=True)
                           if p or not paying_only], dtype=float) / 100


def arms_of(cell: str) -> dict[str, str]:
    """`home_entry=scenes;payment_method=wechat_pay` as {experiment: arm}."""
    return dict(part.split("=", 1) for part in cell.split(";") if "=" in part)


def sessions_by_arm(report_dir: Path) -> dict[str, dict[str, _Arm]]:
    path = report_dir / "sessions.csv.gz"
    if not path.is_file():
        raise NotReportable(f"{path} is missing: not the report folder of a finished run")
    rows = read_sessions(path)
    if rows and "arms" not in rows[0]:
        raise NotReportable(f"{path} has no arms column: the run was recorded before "
                            "A/B experiments")
    by_arm: dict[str, dict[str, _Arm]] = defaultdict(lambda: defaultdict(_Arm))
    for row in rows:
        paid = bool(row["paid_s"])
        for key, arm in arms_of(row["arms"]).items():
            by_arm[key][arm].paid.append(paid)
            by_arm[key][arm].gmv_fen.append(int(row["gmv_fen"] or 0) if paid else 0)
    return by_arm


def _verdict(effect: Effect) -> Effect:
    if effect.interval is None:
        return effect
    low, high = effect.interval
    effect.verdict = ("higher" if low > 0 else "lower" if high < 0
                      else "no difference shown")
    return effect


def compare_conversion(arm: str, sample: _Arm, control: _Arm, level: float,
                       need: int) -> Effect:
    effect = Effect(arm, "conversion", "points", test="Fisher exact, Newcombe interval")
    n, m = len(sample.paid), len(control.paid)
    if min(n, m) < need:
        effect.reason = f"{min(n, m)} sessions in an arm, {need} needed"
        return effect
    hits, hits_control = sum(sample.paid), sum(control.paid)
    effect.effect = round((hits / n - hits_control / m) * 100, 4)
    effect.interval = newcombe_points(hits, n, hits_control, m, level)
    if hits_control:
        effect.relative = round((hits / n) / (hits_control / m) - 1, 5)
    effect.p_value = float(stats.fisher_exact(
        [[hits, n - hits], [hits_control, m - hits_control]]).pvalue)
    return _verdict(effect)


def compare_means(arm: str, metric: str, sample: np.ndarray, control: np.ndarray,
                  level: float, need: int, what: str) -> Effect:
    effect = Effect(arm, metric, "yuan", test="Welch t, bootstrap interval")
    if min(len(sample), len(control)) < need:
        effect.reason = f"{min(len(sample), len(control))} {what} in an arm, {need} needed"
        return effect
    mean, mean_control = float(sample.mean()), float(control.mean())
    effect.effect = round(mean - mean_control, 4)
    if mean_control > 0:
        effect.relative = round(mean / mean_control - 1, 5)
    p = stats.ttest_ind(sample, control, equal_var=False).pvalue
    effect.p_value = None if np.isnan(p) else float(p)
    interval = bootstrap_interval(difference_of_means, sample, control, level, BOOTSTRAP_SEED)
    if interval is None:
        effect.reason = "the bootstrap found no interval"
        return effect
    effect.interval = [round(interval[0], 4), round(interval[1], 4)]
    return _verdict(effect)


def report_experiment(experiment: Experiment, arms: dict[str, _Arm], level: float,
                      need: int) -> ExperimentReport:
    """The control and every arm seen (in the definition's order, then any other) against
    the control."""
    defined = [a.name for a in experiment.arms]
    names = [name for name in defined + sorted(set(arms) - set(defined))
             if name in arms or name == experiment.control]
    control = arms.get(experiment.control, _Arm())
    report = ExperimentReport(experiment.key, experiment.control,
                              [arms.get(name, _Arm()).figures(name) for name in names])
    for name in names[1:]:
        sample = arms[name]
        report.effects += [
            compare_conversion(name, sample, control, level, need),
            compare_means(name, "basket", sample.values_yuan(True),
                          control.values_yuan(True), level, need, "paying sessions"),
            compare_means(name, "gmv_per_session", sample.values_yuan(False),
                          control.values_yuan(False), level, need, "sessions"),
        ]
    return report


def experiment_reports(report_dir: Path, only: str | None = None, level: float = 0.95,
                       need: int = MIN_SESSIONS, definitions: Path = SHIPPED
                       ) -> list[ExperimentReport]:
    """The experiments the run's sessions were in, as the definitions file says them."""
    if not report_dir.is_dir():
        raise NotReportable(f"{report_dir} is not a folder")
    defined = load_experiments(definitions).by_key()
    seen = sessions_by_arm(report_dir)
    keys = [only] if only else sorted(seen)
    for key in keys:
        if key not in seen:
            raise NotReportable(f"no session of this run was in an experiment {key!r} "
                                f"(seen: {', '.join(sorted(seen)) or 'none'})")
        if key not in defined:
            raise NotReportable(f"experiment {key!r} is not in {definitions}: its control "
                                "arm is unknown (give the mall's file with --definitions)")
    if not keys:
        raise NotReportable(f"no session of the run in {report_dir} was in an experiment")
    return [report_experiment(defined[key], seen[key], level, need) for key in keys]


def _shown(effect: Effect) -> str:
    if effect.effect is None:
        return effect.reason
    unit = " points" if effect.unit == "points" else " ¥"
    shown = f"{effect.effect:+.2f}{unit}"
    if effect.interval is not None:
        shown += f" [{effect.interval[0]:+.2f}, {effect.interval[1]:+.2f}]"
    if effect.p_value is not None:
        shown += f"  p={effect.p_value:.3g}"
    return shown


def _tables(report: ExperimentReport, level: float) -> tuple[Table, Table]:
    arms = Table(title=f"{report.key} (control: {report.control})")
    for column in ("arm", "sessions", "paying", "conversion", "basket ¥", "GMV/session ¥"):
        arms.add_column(column, justify="left" if column == "arm" else "right")
    for arm in report.arms:
        arms.add_row(arm.arm, str(arm.sessions), str(arm.paying),
                     "-" if arm.conversion is None else f"{arm.conversion:.2%}",
                     "-" if arm.basket_yuan is None else f"{arm.basket_yuan:.2f}",
                     "-" if arm.gmv_per_session_yuan is None
                     else f"{arm.gmv_per_session_yuan:.2f}")
    effects = Table(title=f"{report.key}: arm - control, {level:.0%} interval")
    for column in ("arm", "metric", "effect [interval]  p", "verdict"):
        effects.add_column(escape(column))
    for effect in report.effects:
        effects.add_row(effect.arm, effect.metric, escape(_shown(effect)), effect.verdict)
    return arms, effects


def experiment(report_dir: Path, only: str | None = None, level: float = 0.95,
               need: int = MIN_SESSIONS, definitions: Path = SHIPPED, as_json: bool = False,
               console: Console | None = None) -> int:
    """Report, write experiment.json into the folder, return the exit code: 0 reported,
    2 when the folder (or the definitions) cannot be used."""
    console = console or Console()
    try:
        reports = experiment_reports(report_dir, only, level, need, definitions)
    except (NotReportable, ExperimentsError, OSError) as exc:
        Console(stderr=True).print(f"[red]cannot report:[/red] {exc}", soft_wrap=True,
                                   markup=True, highlight=False)
        return HARNESS
    document = {"report_dir": str(report_dir), "level": level, "min_sessions": need,
                "experiments": [asdict(r) for r in reports]}
    text = json.dumps(document, indent=1, ensure_ascii=False)
    (report_dir / "experiment.json").write_text(text + "\n", encoding="utf-8")
    if as_json:
        console.print_json(text)
    else:
        for report in reports:
            console.print(*_tables(report, level))
    return 0
