"""The simulated Changsha: who shops where, for what, at what hour — from one seed.

Data (districts, places, personas, store kinds, presets, peaks) lives in `data/*.toml`;
the modules here only turn it into a city and its traffic."""
