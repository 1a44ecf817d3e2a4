"""The sweep layer: many runs, each trained through the run layer. It never imports the report
layer: a sweep that ends calls the report writers its caller hands it (``spec.Reports``).

    spec          SweepSpec (what a sweep depends on), SweepError, Reports
    planning      every planned run with its resolved recipe, run keys, groups and shards
    checks        before training: writable output, enough data, what a checkpoint allows
    claims        one worker per run when several share an output folder
    running       run_sweep: train the planned runs, write their records, then the report
    progress      the log lines and the sweep's progress with an ETA
    config_check  every config key against the experiment's schema, and the machine's limits
    estimate      training time from a few timed steps (--plan --estimate)
    launch        runs as jobs on Ray, SLURM or local processes (--launcher)
    tuning        the base recipe's grid at the base batch, on validation
    budgets       the sweep repeated at several epoch budgets, each tuned first
    warmup_grid   the grid of warmups between sqrt's and DATE's at the claim's scale
    advice        the short run behind reproduce/advise.py and its advice
    regression    short fixed-seed reruns against stored expectations
"""
