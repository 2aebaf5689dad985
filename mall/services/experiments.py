"""Which arm of each running experiment a customer meets, told to the mini-program and
counted as an exposure."""

from __future__ import annotations

from dataclasses import dataclass

from shared.clock import Clock

from ..auth import Principal
from ..experiments import ExperimentFile
from ..metrics import MallMetrics


@dataclass
class Experiments:
    definitions: ExperimentFile
    clock: Clock
    metrics: MallMetrics

    def assigned(self, principal: Principal) -> dict:
        """The customer's arm of every experiment running now on the mall's clock; one
        exposure counted per arm told (the client asks at launch, so once per visit)."""
        now = self.clock.now()
        told = []
        for experiment in self.definitions.experiment:
            if not experiment.running(now):
                continue
            arm = experiment.arm_for(principal.user_id)
            self.metrics.experiment_exposures.labels(experiment.key, arm).inc()
            told.append({"key": experiment.key, "arm": arm,
                         "ends_at": self.clock.stamp(experiment.ends_at)
                         if experiment.ends_at else None})
        return {"experiments": told}
