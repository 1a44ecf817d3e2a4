"""The code every experiment shares, in layers that import only the ones below them
(pyproject.toml's import-linter contracts; tests/test_import_layers.py):

    cli      the commands: parse arguments, hand each sweep its report writers
    sweep    many runs: plans, claims, launchers, estimates, tuning, budgets  | never import
    report   records in; tables, paper diff, plots, README sections out       | each other
    run      one training run: experiment model, trainer, checkpoints, devices (report never
             imports it)
    core     the record format, targets, divergence rule, atomic writes (no torch)
"""
