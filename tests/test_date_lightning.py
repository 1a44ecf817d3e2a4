"""date.lightning with a real Lightning Trainer: the lr of every optimizer step, also after resume.

Skipped only when the library's ``lightning`` extra is not installed (CI installs it).
"""

import pytest
import torch

import date

pytest.importorskip("lightning", reason="the library's [lightning] extra is not installed")
import lightning

import date.lightning

# Tuned at batch 4: 2 epochs, a quarter epoch of warmup, polynomial decay. The run below uses 4 per
# device x 2 accumulation steps x 1 process = 8 (k = 2) on 40 examples: 5 optimizer steps an epoch,
# 10 in all, warmup 0.5 epochs = 2.5 steps under DATE.
BASE = date.Recipe(batch_size=4, lr=0.1, epochs=2, warmup_epochs=0.25, decay="poly")
PER_DEVICE, ACCUMULATION, DATASET_SIZE = 4, 2, 40


class Regression(lightning.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.step_lrs = []  # lr of each param group at every optimizer.step(), in order

    def training_step(self, batch, batch_index):
        inputs, targets = batch
        return torch.nn.functional.mse_loss(self.layer(inputs), targets)

    def configure_optimizers(self):
        config = date.lightning.configure_optimizers(
            self, BASE, per_device_batch=PER_DEVICE, dataset_size=DATASET_SIZE
        )
        config["optimizer"].register_step_pre_hook(
            lambda optimizer, args, kwargs: self.step_lrs.append(
                [group["lr"] for group in optimizer.param_groups]
            )
        )
        return config


def loader():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(DATASET_SIZE, 3, generator=generator)
    targets = inputs.sum(dim=1, keepdim=True)
    dataset = torch.utils.data.TensorDataset(inputs, targets)
    return torch.utils.data.DataLoader(dataset, batch_size=PER_DEVICE)


def trainer(max_steps, root):
    return lightning.Trainer(
        max_steps=max_steps,
        accumulate_grad_batches=ACCUMULATION,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )


def expected_lrs(steps):
    recipe = date.scale(BASE, PER_DEVICE * ACCUMULATION)
    return [date.lr_at(recipe, step, DATASET_SIZE / recipe.batch_size) for step in steps]


# The resume is mid-epoch on purpose (the scheduler state, not the epoch boundary, must carry the
# step); Lightning warns that a plain DataLoader does not resume its position in the epoch.
@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before")
def test_lr_of_every_optimizer_step_follows_lr_at_and_survives_resume(tmp_path):
    torch.manual_seed(0)
    first = Regression()
    run = trainer(6, tmp_path)
    run.fit(first, loader())
    # One optimizer step per 2 batches; two param groups (weights, biases) share the lr.
    assert [lrs[0] for lrs in first.step_lrs] == pytest.approx(expected_lrs(range(6)), rel=1e-12)
    assert all(len(set(lrs)) == 1 for lrs in first.step_lrs)
    scheduler = run.lr_scheduler_configs[0].scheduler
    assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)
    assert scheduler.recipe.batch_size == 8 and scheduler.steps_per_epoch == 5.0

    checkpoint = tmp_path / "step6.ckpt"
    run.save_checkpoint(checkpoint)
    resumed = Regression()
    trainer(10, tmp_path).fit(resumed, loader(), ckpt_path=checkpoint)
    assert [lrs[0] for lrs in resumed.step_lrs] == pytest.approx(
        expected_lrs(range(6, 10)), rel=1e-12
    )
    # The peak (step 3, just after warmup) and the decay are both inside the steps checked.
    assert max(expected_lrs(range(10))) == pytest.approx(0.1 * 2**0.5 * (1 - 0.5 / 7.5) ** 2)
