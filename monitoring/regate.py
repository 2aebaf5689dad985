"""`xingcheng gate REPORT_DIR`: judge a recorded paired run again, from its recorded metrics
or from a Prometheus server that scraped it, without running anything.

Useful when the gate's settings change (edit the scenario's [gate] table, judge again), and
to check that Prometheus holds what the run recorded: both sources give the same samples,
so the same classification."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from loadtests.scenario import ScenarioError
from orchestration.judged_scenario import load_scenario

from .gate import judge, table
from .gate_inputs import recorded

HARNESS = 2


def regate(report_dir: Path, prometheus: str | None = None, scenario: str | None = None,
           console: Console | None = None) -> int:
    """Judge the run in `report_dir` again, write gate.json beside verdict.json (never over
    it: that is the run's own record) and return the exit code: 0 promote, 1 rollback,
    3 hold, 2 when the folder cannot be judged."""
    console = console or Console()
    try:
        verdict = json.loads((report_dir / "verdict.json").read_text(encoding="utf-8"))
        if verdict.get("mode") != "paired":
            raise ValueError("this run had one side; the gate compares a canary with its "
                             "baseline (run with --canary BUILD)")
        settings = load_scenario(scenario or verdict["scenario_path"]).gate
        if prometheus:
            try:   # written apart from the gate; the recorded files need none of it
                from .promql_source import instant_samples
            except ImportError as exc:
                raise ValueError(f"--prometheus needs monitoring.promql_source, which is not "
                                 f"there ({exc}); judge the recorded files instead") from exc
            facts = verdict["facts"]
            at = facts.get("prometheus", {}).get("at", facts["ended_at"])
            samples = instant_samples(prometheus, at, verdict["run"])
        else:
            samples = recorded(report_dir)
        thresholds = {side: data["thresholds"] for side, data in verdict["sides"].items()}
        gate = judge(settings, samples, thresholds)
    except KeyError as exc:
        console.print(f"[red]harness error:[/red] {report_dir / 'verdict.json'} lacks {exc}",
                      soft_wrap=True)
        return HARNESS
    except (OSError, ValueError, ScenarioError) as exc:
        console.print(f"[red]harness error:[/red] {exc}", soft_wrap=True)
        return HARNESS
    gate["source"] = prometheus or "recorded"
    (report_dir / "gate.json").write_text(json.dumps(gate, indent=2, ensure_ascii=False) + "\n",
                                          encoding="utf-8")
    console.print(table(gate))
    deciding = "; ".join(gate["deciding"]) or "every compared metric passes"
    console.print(f"{gate['verdict'].upper()} {verdict['scenario']} ({gate['source']}): "
                  f"{deciding}", soft_wrap=True)
    return gate["exit_code"]
