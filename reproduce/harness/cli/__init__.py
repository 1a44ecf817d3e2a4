"""The commands (reproduce/run.py, report.py, tune.py, regress.py, advise.py, warmup_grid.py):
they parse arguments and wire the sweep and report layers together."""
