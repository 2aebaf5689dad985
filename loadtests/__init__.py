"""Load on the mall: Locust users walking the city's customer journeys at the rate the
simulated hour brings, and `xingcheng run`, which drives a scenario end to end.

Everything here reaches the mall over HTTP only, as a real client does."""
