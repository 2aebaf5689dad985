"""The load client: Locust users walking the city's customer journeys at the rate the
simulated hour brings, in one process or as Locust's master and workers.

It holds the locustfile and what it runs: the split of the schedule (`load_plan`), the
open-workload dispatcher (`arrivals`), the journeys and the pickup desk, the HTTP client,
the client-side metrics and records, and the master's merge of its workers' results.  It
reaches the mall over HTTP only, as a real client does, and imports nothing of the mall,
the gate's statistics or the run's orchestration (`orchestration`), so a load worker on
another machine needs only this package, the simulator and `shared`."""
