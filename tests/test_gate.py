"""The release gate's statistics on seeded synthetic runs binned exactly as the load generator
bins them (its bucket layouts), given to the gate as samples and, for the recorded source,
through real prometheus_client registries written to `.prom` files and read back."""

from __future__ import annotations

import gc
import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from loadtests.client_metrics import BASKET_BUCKETS, GMV_BUCKETS, LATENCY_BUCKETS
from loadtests.scenario import SHIPPED, ScenarioError
from monitoring import comparisons
from monitoring.gate import GateSettings, judge, markdown, table
from monitoring.gate_inputs import Buckets, recorded
from orchestration.judged_scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
STEPS = ("login", "catalogue", "create_order")
SIDES = ("baseline", "canary")
# Zero tolerances put A/A right on the boundary of every null hypothesis: the hardest case
# for the false-rollback rate (any tolerance only makes A/A safer).
BOUNDARY = GateSettings(latency_tolerance=0, latency_tolerance_ms=0,
                        rates={k: 0 for k in GateSettings().rates.model_dump()},
                        values={k: 0 for k in GateSettings().values.model_dump()})


@dataclass
class Build:
    """How one side behaves: what a synthetic run of it draws."""

    sessions: int = 1200
    steps: tuple[str, ...] = STEPS
    median_ms: float = 20.0
    slower: dict[str, float] = field(default_factory=dict)   # step -> factor
    added_ms: dict[str, float] = field(default_factory=dict)  # step -> ms
    failure_rate: float = 0.004
    server_error_rate: float = 0.001
    server_errors: int | None = None    # an exact count instead of a rate
    conversion: float = 0.55
    payment_success: float = 0.97
    completion: float = 0.95
    basket_mean: float = 2.3
    price_yuan: float = 30.0
    oversold: float = 0


@dataclass
class Drawn:
    """One side's raw draws: response times, counts, per-session values."""

    latency_s: dict[str, np.ndarray]
    requests: int
    failures: int
    server_errors: int
    funnel: dict[str, int]
    session_gmv: np.ndarray
    basket: np.ndarray
    oversold: float


def draw(build: Build, rng: np.random.Generator) -> Drawn:
    latency = {}
    for step in build.steps:
        ms = build.median_ms * build.slower.get(step, 1.0) * rng.lognormal(0, 0.5,
                                                                           build.sessions)
        latency[step] = (ms + build.added_ms.get(step, 0.0)) / 1000
    requests = build.sessions * len(build.steps)
    errors = (build.server_errors if build.server_errors is not None
              else int(rng.binomial(requests, build.server_error_rate)))
    paying = int(rng.binomial(build.sessions, build.conversion / build.payment_success))
    paid = int(rng.binomial(paying, build.payment_success))
    completed = int(rng.binomial(paid, build.completion))
    funnel = {"session": build.sessions, "viewed": build.sessions, "ordered": paying,
              "paying": paying, "paid": paid, "completed": completed}
    basket = 1 + rng.poisson(build.basket_mean - 1, paying)
    gmv = np.zeros(build.sessions)
    gmv[:paid] = basket[:paid] * build.price_yuan * rng.lognormal(0, 0.3, paid)
    return Drawn(latency, requests, errors + int(rng.binomial(requests, build.failure_rate)),
                 errors, funnel, gmv, basket.astype(float), build.oversold)


def run_of(seed: int, canary: Build | None = None, baseline: Build | None = None
           ) -> dict[str, Drawn]:
    rng = np.random.default_rng(seed)
    return {"baseline": draw(baseline or Build(), rng), "canary": draw(canary or Build(), rng)}


def _histogram(name: str, labels: dict, bounds, values: np.ndarray) -> list[Sample]:
    """Cumulative `le` buckets as prometheus_client fills them (a value on a bound counts in
    that bound's bucket)."""
    counts = np.bincount(np.searchsorted(np.asarray(bounds, float), values, side="left"),
                         minlength=len(bounds) + 1)
    cumulative = np.cumsum(counts)
    les = [*(floatToGoString(b) for b in bounds), "+Inf"]
    return [*(Sample(f"{name}_bucket", {**labels, "le": le}, float(c))
              for le, c in zip(les, cumulative, strict=True)),
            Sample(f"{name}_count", labels, float(cumulative[-1])),
            Sample(f"{name}_sum", labels, float(values.sum()))]


def samples_of(run: dict[str, Drawn]) -> list[Sample]:
    """The run as the gate's samples, the way Prometheus would answer for it."""
    out = []
    for side, d in run.items():
        for step, seconds in d.latency_s.items():
            out += _histogram("loadgen_request_duration_seconds", {"side": side, "name": step},
                              LATENCY_BUCKETS, seconds)
        out += [Sample("loadgen_requests_total", {"side": side, "name": "all",
                                                  "status_class": "2xx"},
                       float(d.requests - d.server_errors)),
                Sample("loadgen_requests_total", {"side": side, "name": "all",
                                                  "status_class": "5xx"},
                       float(d.server_errors)),
                Sample("loadgen_request_failures_total", {"side": side, "name": "all"},
                       float(d.failures)),
                Sample("mall_stock_oversold_total", {"side": side}, float(d.oversold))]
        out += [Sample("loadgen_funnel_total", {"side": side, "persona": "student",
                                                "district": "岳麓区", "stage": stage}, float(n))
                for stage, n in d.funnel.items()]
        out += _histogram("loadgen_session_gmv_yuan", {"side": side}, GMV_BUCKETS,
                          d.session_gmv)
        out += _histogram("loadgen_basket_items", {"side": side}, BASKET_BUCKETS, d.basket)
    return out


def gate(seed: int, settings: GateSettings | None = None, thresholds: dict | None = None,
         **builds: Build) -> dict:
    return judge(settings or GateSettings(), samples_of(run_of(seed, **builds)), thresholds)


def by_key(judged: dict) -> dict[str, dict]:
    return {m["key"]: m for m in judged["metrics"]}


def test_the_same_build_is_promoted_with_every_number_shown():
    judged = gate(1)
    assert judged["verdict"] == "promote" and judged["exit_code"] == 0, judged["deciding"]
    assert judged["compared"] == 10 and judged["not_compared"] == []
    metrics = by_key(judged)
    assert set(metrics) == {*(f"latency:{s}" for s in STEPS),
                            *(f"rate:{r}" for r in ("http_req_failed", "http_5xx",
                                                    "payment_success", "order_completion",
                                                    "conversion")),
                            "value:gmv_per_session", "value:basket_size", "invariant:oversold"}
    login = metrics["latency:login"]
    assert login["baseline"]["n"] == login["canary"]["n"] == 1200
    assert login["baseline"]["median_ms"] == pytest.approx(20, rel=0.1)
    low, high = login["interval"]
    assert low <= login["effect"] <= high and login["p_value"] <= login["p_adjusted"] <= 1
    conversion = metrics["rate:conversion"]
    assert conversion["baseline"]["hits"] / conversion["baseline"]["trials"] == pytest.approx(
        conversion["baseline"]["rate"], abs=1e-6)
    assert conversion["test"] == "two-proportion z"
    # Rendered for the terminal and for summary.md, one row per metric.
    assert len(table(judged).rows) == len(metrics)
    assert sum(line.startswith("| latency:") for line in markdown(judged)) == 3


@pytest.mark.slow  # thousands of simulated A/A decisions
def test_false_rollbacks_stay_within_alpha_for_the_whole_decision():
    """200 seeded A/A runs of a 10-metric family on the boundary of every null hypothesis
    (tolerances 0): rollbacks at most alpha plus three binomial standard deviations."""
    trials, alpha = 200, 0.05
    gc.freeze()   # statsmodels' Holm runs gc.collect(): let it skip the test session's objects
    try:
        rollbacks = sum(gate(1000 + seed, BOUNDARY)["verdict"] == "rollback"
                        for seed in range(trials))
    finally:
        gc.unfreeze()
    assert rollbacks / trials <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials), rollbacks


def test_a_quarter_slower_step_is_rolled_back_naming_it():
    judged = gate(2, canary=Build(slower={"create_order": 1.25}))
    metrics = by_key(judged)
    assert judged["verdict"] == "rollback"
    assert [m["key"] for m in judged["metrics"] if m["classification"] == "fail"] == [
        "latency:create_order"]
    assert judged["deciding"][0].startswith("latency:create_order: canary +")
    slow = metrics["latency:create_order"]
    assert slow["effect_relative"] == pytest.approx(0.25, abs=0.06)
    assert slow["interval"][0] > 2.0 and slow["p_adjusted"] < 0.05   # beyond +2 ms (10%)
    assert metrics["latency:catalogue"]["classification"] == "pass"


def test_a_slowdown_inside_the_tolerance_passes_and_one_beyond_it_fails():
    """+5 ms on a 100 ms median, 10% tolerance: a real difference the gate lets through
    (4,000 requests a side); +20 ms it rolls back."""
    settings = GateSettings(latency_tolerance=0.10, latency_tolerance_ms=2)
    many = {"sessions": 4000, "median_ms": 100.0}
    inside = by_key(gate(3, settings, baseline=Build(**many),
                         canary=Build(**many, added_ms={"create_order": 5})))
    assert inside["latency:create_order"]["classification"] == "pass"
    assert inside["latency:create_order"]["effect"] > 0
    median = inside["latency:create_order"]["baseline"]["median_ms"]
    assert inside["latency:create_order"]["tolerance"] == f"+{0.1 * median:.2f} ms"
    beyond = by_key(gate(3, settings, baseline=Build(**many),
                         canary=Build(**many, added_ms={"create_order": 20})))
    assert beyond["latency:create_order"]["classification"] == "fail"


def test_rare_server_errors_fail_by_fishers_exact_test():
    """0 of 2,000 requests answered 5xx on the baseline, 12 of 2,000 on the canary."""
    one_step = {"sessions": 2000, "steps": ("login",), "server_errors": 0}
    judged = gate(4, baseline=Build(**one_step),
                  canary=Build(**{**one_step, "server_errors": 12}))
    errors = by_key(judged)["rate:http_5xx"]
    assert (errors["baseline"]["hits"], errors["baseline"]["trials"]) == (0, 2000)
    assert (errors["canary"]["hits"], errors["canary"]["trials"]) == (12, 2000)
    assert errors["test"] == "Fisher exact" and errors["classification"] == "fail"
    assert judged["verdict"] == "rollback"
    # Two errors are no evidence: Fisher's p is far from significant.
    few = by_key(gate(4, baseline=Build(**one_step),
                      canary=Build(**{**one_step, "server_errors": 2})))["rate:http_5xx"]
    assert few["classification"] == "pass" and few["p_value"] > 0.2


def test_a_conversion_drop_is_rolled_back():
    judged = gate(5, baseline=Build(sessions=800, conversion=0.55),
                  canary=Build(sessions=800, conversion=0.45))
    conversion = by_key(judged)["rate:conversion"]
    assert conversion["classification"] == "fail", conversion
    assert conversion["interval"][1] < -3      # worse beyond the 3-point tolerance
    assert judged["verdict"] == "rollback"
    # Two points lower, inside the tolerance: not a rollback.
    small = by_key(gate(5, baseline=Build(sessions=800, conversion=0.55),
                        canary=Build(sessions=800, conversion=0.53)))["rate:conversion"]
    assert small["classification"] == "pass"


def test_lower_gmv_per_session_is_rolled_back():
    """Prices 20% lower: GMV per session falls, baskets do not.  The binned mean is within
    half a percent of the raw draws' mean, and the interval holds the true -20%."""
    run = run_of(6, canary=Build(price_yuan=24.0))
    judged = by_key(judge(GateSettings(), samples_of(run)))
    gmv = judged["value:gmv_per_session"]
    assert gmv["classification"] == "fail"
    raw = run["canary"].session_gmv.mean() / run["baseline"].session_gmv.mean() - 1
    assert gmv["effect"] == pytest.approx(raw, abs=0.005)
    assert gmv["interval"][0] < -0.2 < gmv["interval"][1]
    assert judged["value:basket_size"]["classification"] == "pass"


def test_too_few_samples_hold_never_guess():
    tiny = Build(sessions=30)
    judged = gate(7, baseline=tiny, canary=tiny)
    assert judged["verdict"] == "hold" and judged["exit_code"] == 3
    assert judged["compared"] == 0
    assert "latency:login: 30 and 30 samples, 100 needed on each side" in judged["not_compared"]
    assert by_key(judged)["rate:conversion"]["classification"] == "inconclusive"
    assert "rate:conversion: 30 trials on one side, 100 needed" in judged["deciding"]
    assert "rate:http_5xx: 90 trials on one side, 100 needed" in judged["deciding"]
    # A step named in the settings is judged or held, never left out.
    named = by_key(gate(7, GateSettings(latency_steps=["login"]), baseline=tiny,
                        canary=tiny))["latency:login"]
    assert named["classification"] == "inconclusive" and "30 samples" in named["reason"]


def test_oversold_on_the_canary_is_a_rollback_whatever_else():
    judged = gate(1, canary=Build(oversold=1))
    assert judged["verdict"] == "rollback"
    assert judged["deciding"] == ["invariant:oversold: the canary oversold 1 units"]
    assert gate(1, baseline=Build(oversold=2))["verdict"] == "promote"


def test_scenario_thresholds_fail_only_when_the_canary_alone_breaks_them():
    ok = {"threshold": "http_5xx: count==0", "passed": True, "observed": 0}
    broken = {"threshold": "http_5xx: count==0", "passed": False, "observed": 3}
    judged = gate(1, thresholds={"baseline": [ok], "canary": [broken]})
    assert judged["verdict"] == "rollback"
    assert judged["deciding"] == ["threshold:http_5xx: count==0: fails on the canary only"]
    judged = gate(1, thresholds={"baseline": [broken], "canary": [broken]})
    assert judged["verdict"] == "hold"
    assert "baseline fails it too" in by_key(judged)["threshold:http_5xx: count==0"]["reason"]


def test_only_the_metrics_chosen_are_compared():
    judged = gate(2, GateSettings(compare=["latency", "oversold"]),
                  canary=Build(conversion=0.3))
    assert {m["kind"] for m in judged["metrics"]} == {"latency", "invariant"}
    assert judged["verdict"] == "promote" and judged["compared"] == 3


def test_a_single_side_is_no_comparison():
    baseline_only = [s for s in samples_of(run_of(1)) if s.labels["side"] == "baseline"]
    with pytest.raises(ValueError, match="needs a baseline and a canary"):
        judge(GateSettings(), baseline_only)


def test_buckets_stand_for_their_geometric_middle_and_inf_for_the_last_bound():
    latency = Buckets()
    for le, cumulative in (("0.001", 1), ("0.002", 3), ("0.004", 3), ("+Inf", 4)):
        latency.add(le, cumulative)
    values, counts = latency.counts()
    assert values.tolist() == pytest.approx([0.001 / math.sqrt(2), math.sqrt(0.002 * 0.001),
                                             0.004])
    assert counts.tolist() == [1, 2, 1] and latency.total == 4
    basket = Buckets(integer=True)
    for le, cumulative in (("1.0", 5), ("2.0", 7), ("25.0", 8), ("+Inf", 8)):
        basket.add(le, cumulative)
    assert basket.counts()[0].tolist() == [1, 2, 14]   # (2, 25] holds 3..25


def test_hodges_lehmann_from_buckets_equals_all_pairs_of_the_binned_values():
    rng = np.random.default_rng(8)
    sides = {}
    for side, median in (("baseline", 20.0), ("canary", 23.0)):
        buckets = Buckets()
        for s in _histogram("x", {}, LATENCY_BUCKETS, median * rng.lognormal(0, 0.5, 300)
                            / 1000):
            if s.name == "x_bucket":
                buckets.add(s.labels["le"], s.value)
        sides[side] = buckets
    shift, (low, high) = comparisons.hodges_lehmann(sides["baseline"], sides["canary"], 0.95)
    pairs = np.sort(np.subtract.outer(sides["canary"].expanded(),
                                      sides["baseline"].expanded()).ravel())
    n = m = 300
    k = math.floor(n * m / 2 - 1.959964 * math.sqrt(n * m * (n + m + 1) / 12))
    assert shift == pairs[math.ceil(n * m / 2) - 1]
    assert (low, high) == (pairs[k - 1], pairs[n * m - k])
    assert 0 < low < shift < high


def test_gate_settings_errors_name_the_field(tmp_path):
    scenario = tmp_path / "gated.toml"
    for body, where in (("confidence = 1.5", "gate.confidence"),
                        ("[gate.rates]\nconversion = -0.1", "gate.rates.conversion"),
                        ("[gate.values]\nbasket_size = 1", "gate.values.basket_size"),
                        ('compare = ["latency", "speed"]', "gate.compare.1"),
                        ('latency_steps = ["pay", "pay"]', "gate.latency_steps"),
                        ("bogus = 1", "gate.bogus")):
        table_text = body if body.startswith("[") else f"[gate]\n{body}"
        scenario.write_text(f'name = "gated"\n[window]\nday = "weekday"\n'
                            f'start = "2026-11-27T22:00:00+08:00"\n'
                            f'end = "2026-11-27T22:10:00+08:00"\nspeed = 30\n{table_text}\n',
                            encoding="utf-8")
        with pytest.raises(ScenarioError, match=rf"{where.replace('.', '[.]')}: "):
            load_scenario(str(scenario))


def test_smoke_writes_out_every_default_and_each_shipped_scenario_has_a_gate():
    smoke = (SHIPPED / "smoke.toml").read_text(encoding="utf-8")
    assert load_scenario("smoke").gate == GateSettings()
    defaults = GateSettings().model_dump()
    for key in (*defaults, *defaults["rates"], *defaults["values"]):
        if key not in ("rates", "values"):
            assert f"\n{key} = " in smoke or f"\n# {key} = " in smoke, key
    for path in SHIPPED.glob("*.toml"):
        assert "\n[gate]\n" in path.read_text(encoding="utf-8"), path.name
        load_scenario(str(path))


# The recorded source: real registries, their text exposition on disk, read back.

def write_recorded(run: dict[str, Drawn], folder: Path) -> None:
    """The run as `xingcheng run` records it: the load generator's page with every side, and
    one page per mall (no side: the mall does not know its side)."""
    loadgen = CollectorRegistry()
    duration = Histogram("loadgen_request_duration_seconds", "", ["side", "name"],
                         buckets=LATENCY_BUCKETS, registry=loadgen)
    requests = Counter("loadgen_requests", "", ["side", "name", "status_class"],
                       registry=loadgen)
    failures = Counter("loadgen_request_failures", "", ["side", "name"], registry=loadgen)
    funnel = Counter("loadgen_funnel", "", ["side", "persona", "district", "stage"],
                     registry=loadgen)
    gmv = Histogram("loadgen_session_gmv_yuan", "", ["side"], buckets=GMV_BUCKETS,
                    registry=loadgen)
    basket = Histogram("loadgen_basket_items", "", ["side"], buckets=BASKET_BUCKETS,
                       registry=loadgen)
    for side, d in run.items():
        for step, seconds in d.latency_s.items():
            child = duration.labels(side, step)
            for s in seconds:
                child.observe(float(s))
        requests.labels(side, "all", "2xx").inc(d.requests - d.server_errors)
        requests.labels(side, "all", "5xx").inc(d.server_errors)
        failures.labels(side, "all").inc(d.failures)
        for stage, n in d.funnel.items():
            funnel.labels(side, "student", "岳麓区", stage).inc(n)
        for v in d.session_gmv:
            gmv.labels(side).observe(float(v))
        for v in d.basket:
            basket.labels(side).observe(float(v))
        mall = CollectorRegistry()
        Counter("mall_stock_oversold", "", registry=mall).inc(d.oversold)
        (folder / f"mall-{side}.prom").write_bytes(generate_latest(mall))
    (folder / "loadgen-metrics.prom").write_bytes(generate_latest(loadgen))


def test_recorded_files_give_the_same_judgement_as_the_samples(tmp_path):
    """The same draws through prometheus_client's exposition and back: every number equal,
    so a recorded run and a Prometheus answer cannot disagree on the gate."""
    run = run_of(9, canary=Build(slower={"catalogue": 1.3}, conversion=0.5))
    write_recorded(run, tmp_path)
    from_files = judge(GateSettings(), recorded(tmp_path))
    direct = judge(GateSettings(), samples_of(run))
    assert from_files["metrics"] == direct["metrics"]
    assert from_files["verdict"] == "rollback"
    assert by_key(from_files)["latency:catalogue"]["classification"] == "fail"


def _report_folder(folder: Path, run: dict[str, Drawn], mode: str = "paired") -> Path:
    folder.mkdir()
    write_recorded(run, folder)
    thresholds = [{"threshold": "oversold: count==0", "passed": True, "observed": 0}]
    verdict = {"scenario": "smoke", "scenario_path": str(SHIPPED / "smoke.toml"),
               "run": folder.name, "mode": mode,
               "facts": {"started_at": 1_795_000_000.0, "ended_at": 1_795_000_060.0},
               "sides": {side: {"thresholds": thresholds} for side in run}}
    (folder / "verdict.json").write_text(json.dumps(verdict), encoding="utf-8")
    return folder


def xingcheng_gate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xingcheng.cli", "gate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # CLI processes
def test_xingcheng_gate_judges_a_recorded_folder_again(tmp_path):
    slow = _report_folder(tmp_path / "slow", run_of(10, canary=Build(
        slower={"create_order": 1.4})))
    before = (slow / "verdict.json").read_bytes()
    result = xingcheng_gate(str(slow))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ROLLBACK" in result.stdout and "latency:create_order" in result.stdout
    regated = json.loads((slow / "gate.json").read_text(encoding="utf-8"))
    assert regated["source"] == "recorded" and regated["verdict"] == "rollback"
    assert (slow / "verdict.json").read_bytes() == before
    same = _report_folder(tmp_path / "same", run_of(11))
    assert xingcheng_gate(str(same)).returncode == 0
    strict = tmp_path / "strict.toml"
    strict.write_text((SHIPPED / "smoke.toml").read_text(encoding="utf-8").replace(
        "\nmin_samples = 100 ", "\nmin_samples = 100000 "), encoding="utf-8")
    held = xingcheng_gate(str(same), "--scenario", str(strict))
    assert held.returncode == 3 and "HOLD" in held.stdout


@pytest.mark.slow  # CLI processes
def test_xingcheng_gate_on_a_folder_it_cannot_judge_is_exit_2(tmp_path):
    single = _report_folder(tmp_path / "single", {"baseline": run_of(1)["baseline"]},
                            mode="single")
    result = xingcheng_gate(str(single))
    assert result.returncode == 2 and "one side" in result.stdout
    lost = _report_folder(tmp_path / "lost", run_of(1))
    (lost / "loadgen-metrics.prom").unlink()
    result = xingcheng_gate(str(lost))
    assert result.returncode == 2 and "loadgen-metrics.prom is missing" in result.stdout
    assert not (lost / "gate.json").exists()
    assert xingcheng_gate(str(tmp_path)).returncode == 2    # no verdict.json
