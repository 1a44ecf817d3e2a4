"""The core layer: what training and reporting both read. It imports no other layer and no
torch.

    io            atomic writes
    records       the run record's file format (schema version, file name, reading one)
    targets       the paper's numbers and claims, each with its source and status
    divergence    when a run counts as blown up: judged during training and again on read
"""
