"""One training run and what it needs: the experiment model, the trainer, checkpoints, devices,
distributed training, the gradient noise probe, and keeping trained work that cannot be
finished."""
