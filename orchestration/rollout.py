"""`xingcheng rollout`: a gray release rehearsed under the scenario's load, step by step.

The baseline and the canary serve one copy of the city (one database), behind the gray
router; the scenario's load runs once, through the router, and its window is cut into one
part per step.  At each step the router sends that part of the city to the canary (a share
of customers, or stores, or whole districts), and at the step's end the release gate judges
the canary against the baseline on that step's samples alone (the load generator's counters
read at the step's start are taken off): promote advances to the next step, rollback sends
everything to the baseline at once and the load goes on there, hold keeps the step for one
more part.  The last step (100%) is the canary alone: reaching it is the promotion.

Switching happens under live load, so sessions are mid-journey at every change; `xingcheng
verify` on the shared database at the end shows that nothing was lost or half made.

Exit 0 promoted, 1 rolled back (or the builds are incompatible), 3 held, 2 harness error."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from loadtests.client_metrics import FUNNEL
from loadtests.scenario import ScenarioError
from loadtests.sides import BASELINE, CANARY
from mall.verification import NotVerifiable, verify
from monitoring.gate import judge
from monitoring.gate_inputs import between, parse
from monitoring.rollout_report import write_rollout_report
from shared.clock import SHANGHAI
from simulator.city import build_city

from . import builds
from .builds import BuildError
from .compatibility import check as compatible
from .databases import CACHE, Databases
from .judged_scenario import JudgedScenario, load_scenario
from .load_generator import ONE_PROCESS, LoadError, LoadGenerator, LoadShape
from .run import (
    HARNESS,
    HARNESS_BUILD,
    HarnessError,
    Mall,
    Payer,
    fetch,
    free_port,
    harness_error,
    interrupted,
    locust_command,
    start_malls,
    wind_down,
)

PROMOTED, ROLLED_BACK, HELD = 0, 1, 3
BY = ("share", "store", "district")


@dataclass
class Step:
    percent: int
    rules: dict
    started_s: float                     # seconds since the load began
    ended_s: float | None = None
    verdict: str = "running"             # promote | hold | rollback | served (100%)
    deciding: list[str] = field(default_factory=list)
    samples: dict[str, int] = field(default_factory=dict)   # requests per side
    gate: dict | None = None


def rules_for(by: str, percent: int, districts: list[str]) -> dict:
    """The router's rules that put `percent` of the city on the canary: that share of
    customers; that share of stores (a stable order, so a wider step keeps the earlier
    stores); or the districts, in a stable order, whose stores first reach that share.
    `districts` is each store's district, store 1 first (the city, built once per rollout)."""
    if by == "share":
        return {"share": percent / 100}
    if by == "store":
        ranked = sorted(range(1, len(districts) + 1), key=lambda i: _stable(str(i)))
        return {"stores": ranked[:round(len(ranked) * percent / 100)]}
    counts: dict[str, int] = {}
    for district in districts:
        counts[district] = counts.get(district, 0) + 1
    chosen, covered = [], 0
    for district in sorted(counts, key=_stable):
        if covered >= len(districts) * percent / 100:
            break
        chosen.append(district)
        covered += counts[district]
    return {"districts": chosen}


def _stable(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=8, person=b"xc-rollout").digest()


class RouterProcess:
    """`xingcheng router` from the harness's own code (it stands for the gateway, not for a
    build under test), and its admin endpoint."""

    def __init__(self, report_dir: Path, private: Path, baseline: str, canary: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.token = secrets.token_urlsafe(24)
        token_file = private / "router-admin-token"
        token_file.touch(mode=0o600)
        token_file.write_text(self.token + "\n")
        command = ["router", "--baseline", baseline, "--canary", canary, "--port", str(port),
                   "--admin-token-file", str(token_file.resolve()),
                   "--audit", str((report_dir / "router-audit.jsonl").resolve())]
        self.process = builds.start(HARNESS_BUILD, command, report_dir / "router.log")
        deadline = time.monotonic() + 30
        while True:
            try:
                fetch(f"{self.url}/router/healthz", timeout=2)
                return
            except OSError as exc:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise HarnessError("the gray router did not start; see router.log") from exc
                time.sleep(0.2)

    def set(self, rules: dict, note: str) -> None:
        request = urllib.request.Request(
            f"{self.url}/router/rules", method="PUT",
            data=json.dumps({"rules": rules, "note": note[:200]}).encode(),
            headers={"Authorization": f"Bearer {self.token}", "X-Operator": "xingcheng rollout",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                resp.read()
        except OSError as exc:
            raise HarnessError(f"the router refused the rules {rules}: {exc}") from exc


def rollout(name: str, baseline: str, canary: str, by: str, percents: list[int],
            reports: Path, console: Console, canary_faults: Path | None = None,
            databases: Databases | None = None, load: LoadShape = ONE_PROCESS) -> int:
    databases = databases or Databases()
    try:
        scenario = load_scenario(name)
        if by not in BY:
            raise ScenarioError(f"--by {by}: one of {', '.join(BY)}")
        if not percents or percents != sorted(set(percents)) or percents[0] < 1 or \
                percents[-1] > 100:
            raise ScenarioError("--steps: rising percentages in 1..100, e.g. 5,25,50,100")
        worktrees = CACHE / "builds"
        malls = [Mall(BASELINE, builds.resolve(baseline, worktrees)),
                 Mall(CANARY, builds.resolve(canary, worktrees))]
        if any(mall.build.kind == "url" for mall in malls):
            raise ScenarioError("a rollout starts both builds on one database: give "
                                "checkouts or git refs, not URLs")
        if canary_faults is not None and not canary_faults.is_file():
            raise ScenarioError(f"{canary_faults}: no such fault profile")
        breaks = compatible(malls[0].build, malls[1].build)
    except (ScenarioError, BuildError, ValueError, OSError) as exc:
        console.print(f"[red]harness error:[/red] {exc}")
        return HARNESS
    if breaks:
        for found in breaks:
            console.print(f"BREAK {found}", markup=False)
        console.print(f"[red]ROLLED BACK[/red] before any traffic: {len(breaks)} "
                      "incompatibilities between the builds")
        return ROLLED_BACK
    stamp = datetime.now(SHANGHAI).strftime("%Y%m%d-%H%M%S")
    report_dir = reports / f"rollout-{scenario.name}-{stamp}"
    report_dir.mkdir(parents=True, exist_ok=True)
    payer, router = Payer(), None
    ended: int | None = None
    steps = None
    faults = {CANARY: canary_faults} if canary_faults else {}
    # Built once, before the clock starts: no change of rules waits on a city's build.
    districts = [] if by == "share" else [
        store.district for store in build_city(scenario.preset, scenario.spec.city.seed).stores]
    try:
        since = start_malls(scenario, malls, payer, report_dir, console, faults,
                            shared_db=True, databases=databases)
        router = RouterProcess(report_dir, payer.private, malls[0].url, malls[1].url)
        stepping = Stepping(scenario, by, percents, districts, router, console)
        steps = _drive(scenario, stepping, malls, payer, router, report_dir, since, load)
    except (HarnessError, LoadError) as exc:
        ended = harness_error(console, report_dir, exc)
    except KeyboardInterrupt:
        ended = interrupted(console, report_dir)
    finally:
        wind_down([router.process if router else None] + [mall.process for mall in malls]
                  + [payer.process], databases, console, steps is not None, payer.private)
    if ended is not None:
        return ended
    try:
        return _conclude(scenario, by, percents, malls, steps, report_dir, console,
                         databases.of(BASELINE))
    finally:
        databases.drop(console)


def _readings(loadgen_url: str, malls: list[Mall]) -> list:
    samples = parse(fetch(f"{loadgen_url}/metrics"))
    for mall in malls:
        samples += parse(fetch(f"{mall.url}/metrics"), {"side": mall.side})
    return samples


class Stepping:
    """The rollout's steps as the load runs: each judged by the release gate on its own
    samples once it has run its part of the window; promote widens the canary's part, hold
    lets the step go on, rollback sends all traffic to the baseline for the rest."""

    def __init__(self, scenario: JudgedScenario, by: str, percents: list[int],
                 districts: list[str], router: RouterProcess, console: Console) -> None:
        self.scenario, self.by, self.percents, self.districts = scenario, by, percents, districts
        self.router, self.console = router, console
        self.part = scenario.spec.window.real_seconds / len(percents)
        self.steps: list[Step] = []
        self.before: list = []     # the readings at the step's start: none for the first
        self.rolled_back = False
        self.next_look = self.part

    def enter(self, index: int, now: float, note: str) -> None:
        percent = self.percents[index]
        rules = rules_for(self.by, percent, self.districts)
        self.router.set(rules, note)
        self.steps.append(Step(percent, rules, round(now, 1)))
        self.console.print(f"{now:6.1f} s  step {percent}% on the canary ({_describe(rules)})")

    def due(self, now: float) -> bool:
        return not self.rolled_back and now >= self.next_look

    def look(self, now: float, after: list) -> None:
        step = self.steps[-1]
        own = step_samples(self.before, after)
        step.samples = _requests_per_side(own)
        self.next_look = now + self.part
        if step.percent == 100:   # nothing left to decide: what it served, for the table
            return
        gate = judge(self.scenario.gate, own)
        step.ended_s, step.gate = round(now, 1), gate
        step.verdict, step.deciding = gate["verdict"], gate["deciding"]
        self.console.print(f"{now:6.1f} s  step {step.percent}%: {step.verdict.upper()}"
                           + (f" ({'; '.join(step.deciding[:2])})" if step.deciding else ""),
                           markup=False, soft_wrap=True)
        if step.verdict == "rollback":
            self.router.set({}, f"rollback at {step.percent}%: "
                            + "; ".join(step.deciding)[:150])
            self.rolled_back = True
            self.console.print(f"{now:6.1f} s  ROLLBACK: all traffic to the baseline")
        elif step.verdict == "promote":
            self.before = after
            index = len(self.steps)
            self.enter(index, now, f"step {index + 1}: {self.percents[index]}% "
                       f"(after promote at {step.percent}%)")
        # hold: the same step goes on, judged on all its samples at the next look

    def end(self, now: float) -> list[Step]:
        last = self.steps[-1]
        if last.ended_s is None:
            last.ended_s = round(now, 1)
            if last.percent == 100:
                last.verdict = "served"
            elif last.verdict == "running":
                last.verdict = "hold"
                last.deciding = ["the load ended before the step was judged"]
        return self.steps


def _drive(scenario: JudgedScenario, stepping: Stepping, malls: list[Mall], payer: Payer,
           router: RouterProcess, report_dir: Path, since: float,
           shape: LoadShape) -> list[Step]:
    metrics_port = free_port()
    loadgen = f"http://127.0.0.1:{metrics_port}"
    command = locust_command(scenario, router.url, report_dir, metrics_port, since, 1.0)
    command += ["--gray-router", "--payer-host", payer.url, "--payer-sides",
                ",".join(payer.sides)]
    with LoadGenerator(command, shape, report_dir) as locust:
        while time.time() < since:
            time.sleep(0.05)
        stepping.enter(0, 0.0, f"step 1: {stepping.percents[0]}%")
        while locust.poll() is None:
            time.sleep(0.2)
            now = time.time() - since
            if not stepping.due(now):
                continue
            try:
                stepping.look(now, _readings(loadgen, malls))
            except OSError:
                continue
    locust.check()
    return stepping.end(time.time() - since)


def step_samples(before: list, after: list) -> list:
    """The step's own samples: the counters read at its start taken off.  A session that
    started paying in the step before and paid in this one would count as paid here without
    having paid here, so each funnel stage is held to at most the stage before it (per
    side, persona and district): the few sessions that cross a step's edge are counted in
    the step where they began."""
    samples = between(before, after)
    stages = {}
    for index, sample in enumerate(samples):
        if sample.name == "loadgen_funnel_total":
            labels = {k: v for k, v in sample.labels.items() if k != "stage"}
            stages[(tuple(sorted(labels.items())), sample.labels["stage"])] = index
    for (group, stage), index in sorted(stages.items(), key=lambda kv: FUNNEL.index(kv[0][1])):
        position = FUNNEL.index(stage)
        if position == 0:
            continue
        earlier = stages.get((group, FUNNEL[position - 1]))
        ceiling = samples[earlier].value if earlier is not None else 0.0
        if samples[index].value > ceiling:
            samples[index] = samples[index]._replace(value=ceiling)
    return samples


def _requests_per_side(samples: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sample in samples:
        if sample.name == "loadgen_requests_total" and "side" in sample.labels:
            side = sample.labels["side"]
            counts[side] = counts.get(side, 0) + round(sample.value)
    return counts


def _describe(rules: dict) -> str:
    if "share" in rules:
        return f"{rules['share']:.0%} of customers"
    if "stores" in rules:
        return f"{len(rules['stores'])} stores"
    return f"districts {', '.join(rules.get('districts', [])) or 'none'}"


def _conclude(scenario: JudgedScenario, by: str, percents: list[int], malls: list[Mall],
              steps: list[Step], report_dir: Path, console: Console,
              database: Path | str | None) -> int:
    rolled = next((s for s in steps if s.verdict == "rollback"), None)
    reached = steps[-1].percent
    outcome = ("rolled back" if rolled else "promoted" if reached == 100 and steps[-1].verdict
               in ("served", "promote") else "held")
    try:
        if database is None:
            raise NotVerifiable("no database was made")
        findings = asyncio.run(verify(database))
        checked = {"verified": True, "holds": all(f.holds for f in findings),
                   "invariants": [asdict(f) for f in findings]}
    except NotVerifiable as exc:
        checked = {"verified": False, "why": str(exc), "holds": False, "invariants": []}
    client = json.loads((report_dir / "client.json").read_text()) \
        if (report_dir / "client.json").exists() else {}
    result = {"scenario": scenario.name, "by": by, "steps_planned": percents,
              "outcome": outcome, "reached": reached,
              "deciding": rolled.deciding if rolled else steps[-1].deciding,
              "builds": {m.side: {"build": m.build.spec, "commit": m.build.commit}
                         for m in malls},
              "steps": [asdict(s) for s in steps], "verify": checked,
              "sessions": client.get("sessions"),
              "router_audit": [json.loads(line) for line in
                               (report_dir / "router-audit.jsonl").read_text().splitlines()]}
    (report_dir / "rollout.json").write_text(json.dumps(result, indent=2, ensure_ascii=False)
                                             + "\n", encoding="utf-8")
    write_rollout_report(report_dir, result)
    table = Table(title=f"rollout {scenario.name} by {by}")
    for column in ("step", "from s", "to s", "canary / baseline requests", "verdict",
                   "deciding"):
        table.add_column(column)
    for s in steps:
        table.add_row(f"{s.percent}%", f"{s.started_s:.0f}", f"{s.ended_s or 0:.0f}",
                      f"{s.samples.get(CANARY, 0)} / {s.samples.get(BASELINE, 0)}",
                      s.verdict, "; ".join(s.deciding[:2]))
    console.print(table)
    console.print("verify: " + ", ".join(f"{f['name']} {f['breaches']}"
                                         for f in checked["invariants"]))
    console.print(f"report: {report_dir}/report.html (rollout.json)")
    if not checked["holds"]:
        console.print("[red]FAIL[/red]: invariants broken on the shared database")
        return ROLLED_BACK
    colour = {"promoted": "green", "held": "yellow", "rolled back": "red"}[outcome]
    why = "; ".join(result["deciding"][:3])
    console.print(f"[{colour}]{outcome.upper()}[/{colour}] at {reached}%"
                  + (f": {why}" if why else ""), soft_wrap=True)
    return {"promoted": PROMOTED, "held": HELD, "rolled back": ROLLED_BACK}[outcome]
