"""The `xingcheng` command: one front door to the mall, the simulated city and the load."""
