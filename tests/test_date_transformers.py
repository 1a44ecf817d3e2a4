"""date.transformers with a real `transformers.Trainer`: gradient accumulation, lr per step, resume.

Skipped only when the library's ``transformers`` extra is not installed (CI installs it).
"""

import pytest
import torch

import date

pytest.importorskip("transformers", reason="the library's [transformers] extra is not installed")
pytest.importorskip("accelerate", reason="the library's [transformers] extra is not installed")
import transformers

import date.transformers

# Tuned at batch 4; the run uses 4 per device x 2 accumulation steps x 1 process = 8 (k = 2) on 40
# examples: 5 optimizer steps an epoch, 10 in all, warmup 2.5 steps under DATE.
BASE = date.Recipe(batch_size=4, lr=0.1, epochs=2, warmup_epochs=0.25, decay="cosine")
PER_DEVICE, ACCUMULATION, DATASET_SIZE = 4, 2, 40


class Regression(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)

    def forward(self, inputs, labels):
        return {"loss": torch.nn.functional.mse_loss(self.layer(inputs), labels)}


def dataset():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(DATASET_SIZE, 3, generator=generator)
    return [{"inputs": row, "labels": row.sum(dim=0, keepdim=True)} for row in inputs]


def arguments(output_dir, max_steps):
    return transformers.TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=PER_DEVICE,
        gradient_accumulation_steps=ACCUMULATION,
        max_steps=max_steps,
        save_strategy="steps",
        save_steps=6,
        logging_strategy="no",
        report_to=[],
        use_cpu=True,
        max_grad_norm=0.0,  # no clipping: the step is -lr * gradient for plain SGD
        remove_unused_columns=False,
        seed=0,
    )


def train(output_dir, max_steps, resume_from=None):
    """Train a fresh model; return the lr of every optimizer.step() and the scheduler."""
    args = arguments(output_dir, max_steps)
    model = Regression()
    optimizer, scheduler = date.transformers.optimizers(
        model, BASE, args, dataset_size=DATASET_SIZE
    )
    step_lrs = []
    optimizer.register_step_pre_hook(
        lambda optimizer, *_: step_lrs.append([group["lr"] for group in optimizer.param_groups])
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=dataset(), optimizers=(optimizer, scheduler)
    )
    trainer.train(resume_from_checkpoint=resume_from)
    return step_lrs, scheduler


def expected_lrs(steps):
    recipe = date.scale(BASE, PER_DEVICE * ACCUMULATION)
    return [date.lr_at(recipe, step, DATASET_SIZE / recipe.batch_size) for step in steps]


def test_global_batch_counts_accumulation(tmp_path):
    args = arguments(tmp_path, 1)
    assert date.transformers.trainer_global_batch(args) == 8  # 4 x 2 accumulation x 1 process


def test_lr_of_every_optimizer_step_follows_lr_at_and_survives_resume(tmp_path):
    step_lrs, scheduler = train(tmp_path, max_steps=6)
    # 12 batches of 4, one optimizer step (and one scheduler step) per 2 of them.
    assert len(step_lrs) == 6
    assert [lrs[0] for lrs in step_lrs] == pytest.approx(expected_lrs(range(6)), rel=1e-12)
    assert all(len(set(lrs)) == 1 for lrs in step_lrs)
    assert (scheduler.recipe.batch_size, scheduler.steps_per_epoch) == (8, 5.0)

    resumed_lrs, resumed = train(tmp_path, max_steps=10, resume_from=tmp_path / "checkpoint-6")
    assert [lrs[0] for lrs in resumed_lrs] == pytest.approx(expected_lrs(range(6, 10)), rel=1e-12)
    assert resumed.last_epoch == 10
