"""The mall's decisions: each service owns one concern and is the only place its rules live.
Handlers call services; services call the storage functions."""
