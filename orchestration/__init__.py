"""The run's orchestration: `xingcheng run`, `capacity` and `rollout` (and `compat`).

It builds or reuses the scenario's city and the builds under test, starts the payment
sandbox, the malls (`builds`, `databases`, `cores`) and the load generator
(`load_generator`, which runs the `loadtests` client), rehearses crashes (`crashes`),
watches the run, then judges it against the scenario's thresholds and the release gate
(`judged_scenario`, `observed`, `report`) and writes the report folder."""
