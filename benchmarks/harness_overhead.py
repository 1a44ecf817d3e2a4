"""What the shared harness costs on ptb_small's training step, against a hand-written loop.

    python benchmarks/harness_overhead.py --steps 50

Both sides train the same model (same seed, so the same initial weights) on the same PTB windows
at the same batch, in one process, and are timed in interleaved blocks of steps (the side that
goes first alternates from block to block), so that drift in the machine's load hits both alike.

- harness: one step of reproduce.harness.run.trainer.train's loop body: the stream's next Batch,
  ``accumulate_gradients`` (micro-batch split, the experiment's loss hook with the carried state,
  backward, gradient division by the token count), gradient clipping, ``date``'s optimizer and
  ``DateScheduler``;
- plain: a PyTorch loop written by hand for this one model: window slicing, a detached carried
  state, mean token cross-entropy, backward, clipping, ``torch.optim.SGD`` with the learning rate
  set from a two-line formula (linear warmup, then TF ptb_word_lm's staircase decay).

Prints tokens/s of each and harness time / plain time (goal: at most 1.05). Data loading,
model building and evaluation are outside the timed region (they happen once per run).
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import date
from reproduce.harness.run.devices import resolve_device
from reproduce.harness.run.registry import get_experiment
from reproduce.harness.run.trainer import accumulate_gradients
from reproduce.ptb_small.data import BPTTStream

TARGET_RATIO = 1.05


def harness_side(experiment, model, recipe, data: BPTTStream, seed: int) -> Callable[[], None]:
    """One training step exactly as the trainer's loop body runs it."""
    device = resolve_device("cpu")
    optimizer = date.build_optimizer(model, recipe)
    scheduler = date.DateScheduler(optimizer, recipe, data.steps_per_epoch(recipe.batch_size))
    stream = data.stream(recipe.batch_size, seed)
    states: dict[int, object] = {}

    def step() -> None:
        batch = next(stream)
        optimizer.zero_grad(set_to_none=True)
        loss, _ = accumulate_gradients(experiment, model, batch, recipe.batch_size, states, device)
        if not math.isfinite(loss):
            raise FloatingPointError("harness side diverged")
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip_norm)
        optimizer.step()
        scheduler.step()

    return step


def plain_side(model, recipe, tokens: torch.Tensor, bptt: int) -> Callable[[], None]:
    """The same training written by hand, without the harness."""
    batch_size = recipe.batch_size
    columns = tokens.numel() // batch_size
    rows = tokens[: columns * batch_size].view(batch_size, columns)
    steps_per_epoch = (columns - 1) // bptt
    warmup = recipe.warmup_epochs * steps_per_epoch
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    progress = {"step": 0, "state": None}

    def step() -> None:
        index = progress["step"]
        window = index % steps_per_epoch
        epoch = index // steps_per_epoch
        ramp = min(1.0, index / warmup) if warmup > 0 else 1.0
        lr = recipe.lr * ramp * recipe.decay_rate ** max(epoch - int(recipe.decay_start_epoch), 0)
        for group in optimizer.param_groups:
            group["lr"] = lr
        state = progress["state"]
        if window == 0:
            state = None
        elif state is not None:
            state = tuple(tensor.detach() for tensor in state)
        inputs = rows[:, window * bptt : (window + 1) * bptt]
        targets = rows[:, window * bptt + 1 : (window + 1) * bptt + 1]
        optimizer.zero_grad(set_to_none=True)
        logits, progress["state"] = model(inputs, state)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip_norm)
        optimizer.step()
        progress["step"] = index + 1

    return step


def timed(step: Callable[[], None], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        step()
    return time.perf_counter() - started


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="timed steps per side")
    parser.add_argument("--block", type=int, default=5, help="steps per interleaved block")
    parser.add_argument("--batch-size", type=int, default=20, help="global batch (rows)")
    parser.add_argument("--warmup-steps", type=int, default=2, help="untimed steps per side")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, help="PTB folder (default: the repo's copy)")
    arguments = parser.parse_args(argv)
    if arguments.steps < 1 or arguments.block < 1:
        parser.error("--steps and --block must be positive")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    torch.set_num_threads(arguments.threads)
    experiment = get_experiment("ptb_small")
    recipe = experiment.base_recipe.replace(batch_size=arguments.batch_size)
    data = experiment.build_data("local", arguments.data_dir, experiment.data_defaults).train
    torch.manual_seed(arguments.seed)
    harness_model = experiment.build_model(experiment.model_defaults)
    plain_model = copy.deepcopy(harness_model)
    sides = {
        "harness": harness_side(experiment, harness_model, recipe, data, arguments.seed),
        "plain": plain_side(plain_model, recipe, data.tokens, data.bptt),
    }
    for step in sides.values():
        timed(step, arguments.warmup_steps)
    # Same training on both sides: after the untimed steps the weights agree to float rounding
    # (later the difference grows: SGD at this learning rate amplifies rounding step by step).
    with torch.no_grad():
        difference = max(
            float((mine - theirs).abs().max())
            for mine, theirs in zip(
                harness_model.parameters(), plain_model.parameters(), strict=True
            )
        )

    seconds = {name: 0.0 for name in sides}
    block_ratios = []
    done = 0
    block_index = 0
    while done < arguments.steps:
        count = min(arguments.block, arguments.steps - done)
        order = ("harness", "plain") if block_index % 2 == 0 else ("plain", "harness")
        block = {name: timed(sides[name], count) for name in order}
        for name, value in block.items():
            seconds[name] += value
        block_ratios.append(block["harness"] / block["plain"])
        done += count
        block_index += 1

    tokens = arguments.steps * arguments.batch_size * data.bptt
    ratio = seconds["harness"] / seconds["plain"]
    print(
        f"ptb_small training step, batch {arguments.batch_size} x bptt {data.bptt}, "
        f"{arguments.steps} timed steps per side in blocks of {arguments.block}, "
        f"{torch.get_num_threads()} thread(s), torch {torch.__version__}"
    )
    for name in sides:
        per_step = 1000 * seconds[name] / arguments.steps
        print(f"  {name:8s} {tokens / seconds[name]:9.0f} tokens/s  ({per_step:.1f} ms/step)")
    print(
        f"  harness / plain time: {ratio:.3f} (median over {len(block_ratios)} blocks "
        f"{statistics.median(block_ratios):.3f}); goal <= {TARGET_RATIO:.2f}"
    )
    print(
        f"  same updates: max |weight difference| after {arguments.warmup_steps} untimed steps "
        f"{difference:.1e}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
