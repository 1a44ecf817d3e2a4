"""The run layer: one training run and what it needs. It imports only core.

experiment    the Experiment model an experiment folder fills in (data, model, loss,
              evaluation, recipe, presets, targets), and its data helpers
schema        every config key's type and range, declared by each experiment
registry      the experiments found in the experiment folders
settings      RunSettings: how a run is executed (--set run.KEY)
trainer       the one training loop
checkpoint    state to continue a run exactly where it stopped
devices       cpu, cuda, tpu
distributed   torchrun (DDP) and XLA replicas
noise_probe   the gradient noise scale measured during training
metrics       metric arithmetic that never raises on a blown-up model
provenance    what a record says of where its run came from, and its config key
unfinished    trained runs whose evaluation failed: kept, with how to finish them
rescue        writes that never lose a trained run
"""
