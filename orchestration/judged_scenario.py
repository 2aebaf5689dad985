"""A scenario as the run that judges it reads it: the load client's reading
(`loadtests.scenario`) with its `[thresholds]` parsed, its `[gate]` validated and its
experiments named as the mall names them, each error naming its field."""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError

from loadtests.scenario import Scenario, invalid
from loadtests.scenario import load_scenario as read_scenario
from mall.experiments import Identifier
from monitoring.gate import GateSettings

from .thresholds import parse_thresholds

# experiment -> arm: the keys of a scenario's [experiment_response]
EXPERIMENT_ARMS = TypeAdapter(dict[Identifier, dict[Identifier, float]])


class JudgedScenario(Scenario):
    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario.path, scenario.spec, scenario.text)
        self.thresholds = parse_thresholds(self.spec.thresholds, self.text, str(self.path))
        try:
            self.gate = GateSettings.model_validate(self.spec.gate)
        except ValidationError as exc:
            raise invalid(self.path, exc, "gate") from exc
        try:
            EXPERIMENT_ARMS.validate_python(self.spec.experiment_response)
        except ValidationError as exc:
            raise invalid(self.path, exc, "experiment_response") from exc


def load_scenario(name_or_path: str) -> JudgedScenario:
    return JudgedScenario(read_scenario(name_or_path))
