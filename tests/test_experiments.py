"""A/B experiments: a stable, weighted assignment told to the client, a definitions file
refused when it is wrong, and `xingcheng experiment` finding a known effect (and no effect
where there is none) in a run's sessions."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import random
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from loadtests.client_metrics import LoadMetrics
from loadtests.records import RunRecords, SessionRecord
from loadtests.scenario import ScenarioError
from mall.experiments import SHIPPED, Experiment, ExperimentsError, load_experiments
from orchestration.judged_scenario import load_scenario
from shared.clock import Clock

from .data_files import refusal

XINGCHENG = [sys.executable, "-m", "xingcheng.cli"]
SHIPPED_KEYS = ["home_entry", "recommendation_strategy", "payment_method"]
SCENARIO = """name = "responding"
[window]
day = "weekday"
start = "2026-11-27T22:20:00+08:00"
end = "2026-11-27T22:26:40+08:00"
speed = 40
"""


def experiment(weights: dict[str, int], key: str = "trial", salt: str = "s1") -> Experiment:
    return Experiment(key=key, salt=salt,
                      arms=[{"name": name, "weight": w} for name, w in weights.items()])


# The assignment rule ------------------------------------------------------------------------


def test_the_arm_is_the_weighted_bucket_of_sha256_of_key_salt_and_user():
    trial = experiment({"a": 1, "b": 2, "c": 1})
    for user_id in range(1, 500):
        hashed = int(hashlib.sha256(f"trial:s1:{user_id}".encode()).hexdigest()[:16], 16)
        quarter = hashed * 4 // 2**64          # weights 1:2:1 are quarters 0 | 1 2 | 3
        assert trial.arm_for(user_id) == "abbc"[quarter], user_id


def test_the_same_user_gets_the_same_arm_in_another_process():
    shipped = load_experiments()
    here = {e.key: [e.arm_for(u) for u in range(1, 200)] for e in shipped.experiment}
    there = subprocess.run(
        [sys.executable, "-c", "import json; from mall.experiments import load_experiments; "
         "print(json.dumps({e.key: [e.arm_for(u) for u in range(1, 200)] "
         "for e in load_experiments().experiment}))"],
        capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(there.stdout) == here


def test_weights_are_respected_over_ten_thousand_users():
    users = range(1, 10_001)
    even = Counter(experiment({"scenes": 1, "search": 1}).arm_for(u) for u in users)
    assert abs(even["scenes"] - 5000) < 300, even       # 6 standard deviations: 50 each
    skewed = Counter(experiment({"old": 3, "new": 1}).arm_for(u) for u in users)
    assert abs(skewed["new"] - 2500) < 260, skewed      # 6 standard deviations: 43 each
    assert sum(skewed.values()) == 10_000


def test_each_salt_shuffles_afresh_and_a_new_salt_reshuffles():
    users = range(1, 10_001)
    first = experiment({"a": 1, "b": 1}, "one", "x")
    second = experiment({"a": 1, "b": 1}, "two", "x")
    both = sum(first.arm_for(u) == "a" and second.arm_for(u) == "a" for u in users)
    assert abs(both - 2500) < 260, "two experiments' arms must be independent"
    resalted = experiment({"a": 1, "b": 1}, "one", "y")
    kept = sum(first.arm_for(u) == resalted.arm_for(u) for u in users)
    assert abs(kept - 5000) < 300, "a new salt is a new draw"


def test_an_experiment_runs_only_in_its_window():
    start = Clock.parse("2026-11-27T21:00+08:00").now()
    trial = Experiment(key="trial", salt="s", starts_at=start,
                       ends_at=start + timedelta(hours=1),
                       arms=[{"name": "a", "weight": 1}, {"name": "b", "weight": 1}])
    assert not trial.running(start - timedelta(seconds=1))
    assert trial.running(start) and trial.running(start + timedelta(minutes=59))
    assert not trial.running(start + timedelta(hours=1))


# The definitions file -----------------------------------------------------------------------

GOOD = """[[experiment]]
key = "trial"
salt = "s"
arms = [{ name = "a", weight = 1 }, { name = "b", weight = 1 }]
"""


@pytest.mark.parametrize("text, named", [
    (GOOD.replace('name = "b", weight', 'name = "b", weigth'), "experiment.0.arms.1.weigth"),
    (GOOD.replace("weight = 1 }]", "weight = 0 }]"), "experiment.0.arms.1.weight"),
    (GOOD.replace("weight = 1 }]", "weight = -2 }]"), "experiment.0.arms.1.weight"),
    (GOOD.replace("weight = 1 }]", "weight = 1.5 }]"), "experiment.0.arms.1.weight"),
    (GOOD.replace('"b"', '"a"'), "experiment.0.arms: arm names must differ; repeated: a"),
    (GOOD.replace(', { name = "b", weight = 1 }', ""), "experiment.0.arms: an experiment "
     "needs two arms"),
    (GOOD + GOOD, "experiment keys must differ; repeated: trial"),
    (GOOD.replace('salt = "s"', 'salt = ""'), "experiment.0.salt"),
    (GOOD.replace('salt = "s"\n', ""), "experiment.0.salt: Field required"),
    (GOOD.replace('"trial"', '"Home Entry"'), "experiment.0.key"),
    (GOOD + 'starts_at = 2026-11-27T22:00:00+08:00\nends_at = 2026-11-27T21:00:00+08:00\n',
     "experiment.0: ends_at must come after starts_at"),
    (GOOD + "ends_at = 2026-11-27T22:00:00\n", "experiment.0: starts_at and ends_at need a "
     "UTC offset"),
    (GOOD.replace("[[experiment]]", "[[experiments]]"), "experiments: Extra inputs"),
    ("[[experiment]\n", "experiments.toml: "),
])
def test_a_bad_definitions_file_is_refused_naming_the_field(tmp_path, text, named):
    assert named in refusal(tmp_path, "experiments.toml", text, load_experiments,
                            ExperimentsError)


def test_the_shipped_file_holds_the_three_experiments_with_their_controls():
    shipped = load_experiments(SHIPPED)
    assert [e.key for e in shipped.experiment] == SHIPPED_KEYS
    assert [e.control for e in shipped.experiment] == ["scenes", "nearby", "wechat_pay"]


def test_serve_with_a_bad_definitions_file_is_exit_2_naming_the_field(tmp_path):
    path = tmp_path / "experiments.toml"
    path.write_text(GOOD.replace("weight = 1 }]", "weight = 0 }]"), encoding="utf-8")
    done = subprocess.run([*XINGCHENG, "serve", "--db", str(tmp_path / "x.db"),
                           "--experiments", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stderr
    assert "bad experiments" in done.stderr and "experiment.0.arms.1.weight" in done.stderr
    assert "Traceback" not in done.stderr


# The endpoint -------------------------------------------------------------------------------


async def test_two_malls_on_one_database_tell_a_customer_the_same_arms(start_mall, tmp_path):
    first = await start_mall(db_path=tmp_path / "shared.db")
    second = await start_mall(db_path=tmp_path / "shared.db")
    told = {}
    for openid in ("u1", "u2", "u3", "u4", "u5", "u6"):
        token = await first.api.login(openid)
        mine = await first.api.get("/api/v1/me/experiments", token=token)
        again = await second.api.get("/api/v1/me/experiments", token=token)
        assert mine.status == again.status == 200, mine.body
        assert mine.body == again.body
        told[openid] = {e["key"]: e["arm"] for e in mine.body["experiments"]}
        assert [e["key"] for e in mine.body["experiments"]] == SHIPPED_KEYS
        assert all(e["ends_at"] is None for e in mine.body["experiments"])
    # The arms are the user id's (a customer logging in to the other mall is the same user).
    user_id = (await second.api.post("/api/v1/auth/wx-login",
                                     json={"code": "sandbox:u3"})).body["user_id"]
    shipped = load_experiments().by_key()
    assert told["u3"] == {key: shipped[key].arm_for(user_id) for key in SHIPPED_KEYS}
    # Every arm told is counted once, on the mall that told it.
    exposures = sum([await first.api.metric(f'mall_experiment_exposures_total{{arm="{arm}",'
                                            'experiment="payment_method"}')
                     for arm in ("wechat_pay", "wechat_pay_points")])
    assert exposures == 6


async def test_only_experiments_running_on_the_mall_clock_are_told(start_mall, tmp_path):
    path = tmp_path / "experiments.toml"
    path.write_text(
        GOOD.replace("trial", "running") + "ends_at = 2026-11-27T23:00:00+08:00\n"
        + GOOD.replace("trial", "ended") + "ends_at = 2026-11-27T21:30:00+08:00\n"
        + GOOD.replace("trial", "to_come") + "starts_at = 2026-11-28T09:00:00+08:00\n",
        encoding="utf-8")
    mall = await start_mall(experiments=path, clock=Clock.parse("2026-11-27T22:00+08:00"))
    token = await mall.api.login("night-owl")
    mine = await mall.api.get("/api/v1/me/experiments", token=token)
    assert mine.status == 200
    [running] = mine.body["experiments"]
    assert running["key"] == "running" and running["arm"] in ("a", "b")
    assert running["ends_at"] == "2026-11-27T23:00:00.000+08:00"


async def test_the_arms_are_for_logged_in_users_only(mall):
    refused = await mall.api.get("/api/v1/me/experiments")
    assert refused.status == 401 and refused.error["code"] == "login_required"
    doc = (await mall.api.get("/api/v1/openapi.json")).body
    operation = doc["paths"]["/api/v1/me/experiments"]["get"]
    assert operation["x-access"] == "user"
    assert "content" in operation["responses"]["200"]


# The report ---------------------------------------------------------------------------------


def write_sessions(folder: Path, conversion: dict[str, float], per_arm: int,
                   seed: int = 11) -> None:
    """A run's sessions.csv.gz, written by the load's own records: payment_method's arms pay
    at the given rates; home_entry's arms are drawn apart from payment_method (an A/A)."""
    rng = random.Random(seed)
    records = RunRecords(LoadMetrics())
    number = 0
    for arm, rate in conversion.items():
        for _ in range(per_arm):
            number += 1
            entry = rng.choice(("scenes", "search"))
            record = SessionRecord(number, "baseline", "student", "岳麓区", "pickup_order",
                                   0.0, arms=f"home_entry={entry};payment_method={arm}")
            if rng.random() < rate:
                record.stage, record.paid_s = "paid", 1.0
                record.gmv_fen = round(rng.lognormvariate(8, 0.5))   # ~30 yuan
            records.sessions.append(record)
    folder.mkdir(parents=True, exist_ok=True)
    records.write(folder)


def run_report(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*XINGCHENG, "experiment", str(folder), *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.several_seconds
def test_a_known_conversion_lift_is_found_and_an_a_a_is_not(tmp_path):
    write_sessions(tmp_path, {"wechat_pay": 0.20, "wechat_pay_points": 0.30}, 3000)
    done = run_report(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "payment_method" in done.stdout and "higher" in done.stdout
    reported = json.loads((tmp_path / "experiment.json").read_text())
    assert reported["level"] == 0.95
    payment, entry = (next(e for e in reported["experiments"] if e["key"] == key)
                      for key in ("payment_method", "home_entry"))
    control, treated = payment["arms"]
    assert (control["arm"], control["sessions"]) == ("wechat_pay", 3000)
    assert abs(control["conversion"] - 0.20) < 0.02 and abs(treated["conversion"] - 0.30) < 0.02
    effects = {e["metric"]: e for e in payment["effects"]}
    lift = effects["conversion"]
    assert lift["interval"][0] > 0 and lift["verdict"] == "higher" and lift["p_value"] < 1e-6
    assert lift["interval"][0] < lift["effect"] < lift["interval"][1]
    assert abs(lift["effect"] - 10) < 3          # points
    # The same basket on both arms, more paying sessions: GMV per session up, basket not.
    assert effects["gmv_per_session"]["verdict"] == "higher"
    assert effects["basket"]["interval"][0] < 0 < effects["basket"]["interval"][1]
    assert effects["basket"]["unit"] == "yuan"
    for effect in entry["effects"]:              # home_entry's arms differ in nothing
        assert effect["interval"][0] < 0 < effect["interval"][1], effect
        assert effect["verdict"] == "no difference shown" and effect["p_value"] > 0.05


@pytest.mark.slow  # one CLI process per case
def test_a_narrower_level_gives_a_narrower_interval_and_one_experiment_can_be_chosen(tmp_path):
    write_sessions(tmp_path, {"wechat_pay": 0.20, "wechat_pay_points": 0.22}, 1000)
    widths = {}
    for level in ("0.99", "0.8"):
        done = run_report(tmp_path, "--experiment", "payment_method", "--level", level,
                          "--json")
        assert done.returncode == 0, done.stderr
        [only] = json.loads(done.stdout)["experiments"]
        assert only["key"] == "payment_method"
        low, high = only["effects"][0]["interval"]
        widths[level] = high - low
    assert widths["0.8"] < widths["0.99"]


@pytest.mark.several_seconds
def test_too_few_sessions_are_inconclusive_not_guessed(tmp_path):
    write_sessions(tmp_path, {"wechat_pay": 0.2, "wechat_pay_points": 0.6}, 40)
    done = run_report(tmp_path, "--experiment", "payment_method")
    assert done.returncode == 0, done.stderr
    [payment] = json.loads((tmp_path / "experiment.json").read_text())["experiments"]
    assert payment["arms"][0]["sessions"] == 40    # the figures are shown all the same
    for effect in payment["effects"]:
        assert effect["verdict"] == "inconclusive" and effect["interval"] is None
        assert "needed" in effect["reason"]
    assert "inconclusive" in done.stdout


@pytest.mark.slow  # one CLI process per case
def test_a_folder_that_cannot_be_reported_is_exit_2_saying_why(tmp_path):
    missing = run_report(tmp_path / "nowhere")
    assert missing.returncode == 2 and "is not a folder" in missing.stderr
    empty = run_report(tmp_path)
    assert empty.returncode == 2 and "sessions.csv.gz is missing" in empty.stderr
    write_sessions(tmp_path, {"wechat_pay": 0.2, "wechat_pay_points": 0.3}, 10)
    unknown = run_report(tmp_path, "--experiment", "checkout_colour")
    assert unknown.returncode == 2 and "checkout_colour" in unknown.stderr
    other = tmp_path / "other.toml"
    other.write_text(GOOD, encoding="utf-8")
    undefined = run_report(tmp_path, "--definitions", str(other))
    assert undefined.returncode == 2 and "control arm is unknown" in undefined.stderr
    assert "Traceback" not in undefined.stderr + unknown.stderr + empty.stderr


@pytest.mark.several_seconds
def test_sessions_recorded_before_experiments_are_exit_2(tmp_path):
    write_sessions(tmp_path, {"wechat_pay": 0.2}, 5)
    path = tmp_path / "sessions.csv.gz"
    with gzip.open(path, "rt", newline="") as old:
        rows = [row[:-1] for row in csv.reader(old)]     # arms is the last column
    with gzip.open(path, "wt", newline="") as old:
        csv.writer(old).writerows(rows)
    done = run_report(tmp_path)
    assert done.returncode == 2 and "before A/B experiments" in done.stderr


@pytest.mark.parametrize("table, named", [
    ("[experiment_response.payment_method]\nwechat_pay_points = 1.0\n",
     "experiment_response.payment_method.wechat_pay_points"),
    ("[experiment_response.payment_method]\nwechat_pay_points = -0.1\n",
     "experiment_response.payment_method.wechat_pay_points"),
    ('[experiment_response."Payment Method"]\nwechat_pay_points = 0.1\n',
     "experiment_response.Payment Method"),
])
def test_a_scenario_s_experiment_response_is_a_share_below_one(tmp_path, table, named):
    scenario = tmp_path / "responding.toml"
    scenario.write_text(SCENARIO + table, encoding="utf-8")
    with pytest.raises(ScenarioError) as refused:
        load_scenario(str(scenario))
    assert named in str(refused.value)


def test_a_scenario_without_experiment_response_leaves_arms_without_effect(tmp_path):
    scenario = tmp_path / "plain.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    assert load_scenario(str(scenario)).spec.experiment_response == {}
    scenario.write_text(SCENARIO + "[experiment_response.home_entry]\nsearch = 0.25\n",
                        encoding="utf-8")
    assert load_scenario(str(scenario)).spec.experiment_response == {
        "home_entry": {"search": 0.25}}
