"""The bottom layer: what training and reporting both read, with no torch and no training code.

io (atomic writes), targets (the paper's numbers with their sources), divergence (when a run
counts as blown up: judged during training and again when a record is read), records (the run
record's file format)."""
