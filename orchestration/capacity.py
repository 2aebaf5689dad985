"""容量评估: how many sessions a second can this mall hold?  `xingcheng capacity SCENARIO`
runs the scenario again and again with its arrival rates scaled up step by step (x1, x1.5,
x2.25, ...) until its SLO breaks: the scenario's own latency thresholds
(`http_req_duration...`) and error thresholds (`http_req_failed`, `http_5xx`).  The capacity
is the highest rate of a step that held; the report names the step that broke and why.

A step where the mall shed more than `SHED_SHARE` of its requests (503 with Retry-After:
load shedding) did not hold either: a mall that protects its latency by turning customers
away is past its capacity, however fast the ones it admits are served.

A step where the load generator itself fell behind (sessions started late, or the achieved
rate short of the target) measures the load generator, not the mall: the search stops there
and says so, rather than reporting the generator's limit as the mall's."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from loadtests.scenario import ScenarioError

from .databases import LOCAL_SERVER, Databases
from .judged_scenario import load_scenario
from .load_generator import ONE_PROCESS, LoadShape
from .run import HARNESS, INTERRUPTED, RunSettings, flatten, run

SLO_METRICS = ("http_req_duration", "http_req_failed", "http_5xx")
SHED_SHARE = 0.01         # the mall shed more of its requests than this: past its capacity
LATE_SHARE = 0.01         # more sessions late than this: the load generator fell behind
RATE_SHORTFALL = 0.05     # achieved arrivals this far below target: the same


@dataclass
class Step:
    factor: float
    exit_code: int
    report: str = ""
    sessions_per_s: float = 0.0       # achieved: sessions started / real seconds of load
    target_per_s: float = 0.0         # scheduled / real seconds
    held: bool = False
    broken: list[str] = field(default_factory=list)   # SLO thresholds that failed
    generator_behind: str | None = None
    p95_ms: dict[str, float] = field(default_factory=dict)
    failed_share: float = 0.0
    shed_share: float = 0.0


def judge_step(factor: float, exit_code: int, report_dir: Path) -> Step:
    """One step from its verdict.json: did the SLO hold, and could the load keep up?"""
    step = Step(factor, exit_code, str(report_dir))
    verdict = json.loads((report_dir / "verdict.json").read_text(encoding="utf-8"))
    seconds = float(verdict["facts"]["real_seconds"])
    sessions = verdict["sessions"]
    step.sessions_per_s = round(sessions["started"] / seconds, 2)
    step.target_per_s = round(sessions["scheduled"] / seconds, 2)
    side = verdict["sides"]["baseline"]
    step.broken = [t["threshold"] for t in side["thresholds"]
                   if not t["passed"] and t["metric"].split("{")[0] in SLO_METRICS]
    late = sessions["late"] / max(1, sessions["scheduled"])
    if late > LATE_SHARE:
        step.generator_behind = f"{late:.1%} of sessions started late"
    elif (verdict["arrival_rate_error"] or 0.0) > RATE_SHORTFALL:
        step.generator_behind = (f"achieved arrivals {verdict['arrival_rate_error']:.0%} off "
                                 "the target")
    step.p95_ms = {s["name"]: s["p95_ms"] for s in side["steps"]
                   if s["name"] in ("catalogue", "create_order", "pay")}
    requests = sum(s["count"] for s in side["steps"])
    step.failed_share = round(sum(s["failures"] for s in side["steps"]) / max(1, requests), 5)
    step.shed_share = _shed_share(report_dir / "mall-baseline.prom")
    if step.shed_share > SHED_SHARE:
        step.broken.append(f"the mall shed {step.shed_share:.1%} of its requests")
    step.held = not step.broken and step.generator_behind is None
    return step


def _shed_share(prom: Path) -> float:
    """Requests the mall refused by load shedding, as a share of all it answered."""
    if not prom.exists():
        return 0.0
    samples = flatten(prom.read_text(encoding="utf-8"))
    shed = sum(v for k, v in samples.items() if k.startswith("mall_shed_requests_total"))
    answered = sum(v for k, v in samples.items() if k.startswith("mall_http_requests_total"))
    return round(shed / max(1.0, answered), 5)


def capacity(name: str, reports: Path, console: Console, start: float = 1.0,
             growth: float = 1.5, steps: int = 8, serve_args: tuple[str, ...] = (),
             engine: str = "sqlite", server: str = LOCAL_SERVER,
             load: LoadShape = ONE_PROCESS) -> int:
    """Step the rate up until the SLO breaks; writes capacity.json and capacity.html.
    Exit 0 when a capacity was found, 1 when not even the first step held, 2 on a harness
    error (the search cannot say)."""
    try:
        scenario = load_scenario(name)
    except ScenarioError as exc:
        console.print(f"[red]harness error:[/red] {exc}")
        return HARNESS
    folder = reports / f"capacity-{scenario.name}"
    folder.mkdir(parents=True, exist_ok=True)
    done: list[Step] = []
    factor = start
    for number in range(steps):
        console.print(f"step {number + 1}: {scenario.name} at x{factor:g} the arrival rate")
        before = set(folder.iterdir())
        code = run(RunSettings(name, reports=folder, rate_factor=factor, serve_args=serve_args,
                               databases=Databases(engine, server), load=load),
                   Console(quiet=True))
        made = sorted(set(folder.iterdir()) - before)
        if code == INTERRUPTED:   # Ctrl-C or SIGTERM: the step's run stopped its processes
            return INTERRUPTED
        if code == HARNESS or not made or not (made[-1] / "verdict.json").exists():
            console.print(f"[red]harness error[/red] at x{factor:g}; see {folder}")
            return HARNESS
        step = judge_step(factor, code, made[-1])
        done.append(step)
        console.print(f"  {step.sessions_per_s:g} sessions/s (target {step.target_per_s:g}): "
                      + ("held" if step.held else step.generator_behind
                         or "broke: " + "; ".join(step.broken)))
        if not step.held:
            break
        factor = round(factor * growth, 4)
    result = _result(scenario.name, done)
    (folder / "capacity.json").write_text(json.dumps(result, indent=2, ensure_ascii=False)
                                          + "\n", encoding="utf-8")
    from monitoring.capacity_report import write_capacity_report

    page = write_capacity_report(folder, result)
    console.print(_table(done))
    console.print(result["summary"])
    console.print(f"report: {page}")
    return 0 if result["capacity_sessions_per_s"] is not None else 1


def _result(scenario: str, done: list[Step]) -> dict:
    held = [s for s in done if s.held]
    best = max(held, key=lambda s: s.sessions_per_s) if held else None
    last = done[-1]
    if last.held:
        why = f"every step held up to x{last.factor:g}: the search ran out of steps"
    elif last.generator_behind:
        why = (f"x{last.factor:g}: the load generator fell behind ({last.generator_behind}), "
               "so the mall's limit lies above this")
    else:
        why = f"x{last.factor:g} broke the SLO: {'; '.join(last.broken)}"
    capacity_s = best.sessions_per_s if best else None
    summary = (f"capacity of {scenario}: {capacity_s:g} sessions/s (x{best.factor:g}); {why}"
               if best else f"no step of {scenario} held: {why}")
    return {"scenario": scenario, "capacity_sessions_per_s": capacity_s,
            "capacity_factor": best.factor if best else None, "stopped_because": why,
            "summary": summary, "steps": [asdict(s) for s in done]}


def _table(done: list[Step]) -> Table:
    table = Table(title="capacity steps")
    for column in ("rate", "sessions/s", "target/s", "p95 create_order ms", "failed", "shed",
                   "result"):
        table.add_column(column)
    for s in done:
        table.add_row(f"x{s.factor:g}", f"{s.sessions_per_s:g}", f"{s.target_per_s:g}",
                      f"{s.p95_ms.get('create_order', float('nan')):g}", f"{s.failed_share:.2%}",
                      f"{s.shed_share:.2%}",
                      "held" if s.held else s.generator_behind or "; ".join(s.broken))
    return table
