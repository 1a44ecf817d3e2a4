"""Many runs: planning a sweep, claiming its runs, training them through the run layer, and what
is built from sweeps (launchers, estimates, tuning, epoch budgets, the warmup grid, regression
reruns)."""
