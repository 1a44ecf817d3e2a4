"""The PTB training stream (stateful truncated BPTT): layout, windows, epochs, resume and shards."""

from __future__ import annotations

import itertools

import pytest
import torch

from reproduce.datasets.ptb import batchify
from reproduce.ptb_small.data import BPTTStream, TokenSplit

# Token i has id i, so every window says exactly where it was cut from.
TOKENS = torch.arange(1_003)
BPTT = 7


def take(stream, count):
    return list(itertools.islice(stream, count))


def test_steps_per_epoch_is_the_number_of_full_windows_in_a_row():
    data = BPTTStream(TOKENS, BPTT)
    # 1003 // 4 = 250 columns; the last target is column 249, so (250 - 1) // 7 = 35 windows.
    assert data.steps_per_epoch(4) == 35
    assert isinstance(data.steps_per_epoch(4), int)
    assert data.steps_per_epoch(10) == (100 - 1) // BPTT


def test_too_many_rows_for_the_corpus_is_an_error():
    with pytest.raises(ValueError, match="too few"):
        BPTTStream(TOKENS, BPTT).steps_per_epoch(200)  # rows of 5 tokens hold no 7-token window


def test_shapes_and_targets_are_inputs_shifted_by_one():
    rows = batchify(TOKENS, 4)
    for batch in take(BPTTStream(TOKENS, BPTT).stream(4, seed=0), 3):
        inputs, targets = batch.tensors
        assert inputs.shape == targets.shape == (4, BPTT)
        assert batch.size == 4
        assert torch.equal(targets[:, :-1], inputs[:, 1:])
        # Rows are contiguous stretches of the corpus: row r starts at r * columns.
        assert torch.equal(targets[:, -1], inputs[:, -1] + 1)
        assert torch.equal(inputs[:, 0] // rows.shape[1], torch.arange(4))


def test_windows_are_contiguous_across_steps_and_each_epoch_restarts_with_a_reset():
    data = BPTTStream(TOKENS, BPTT)
    steps = data.steps_per_epoch(4)
    batches = take(data.stream(4, seed=0), 2 * steps + 1)
    for previous, current in itertools.pairwise(batches[:steps]):
        assert torch.equal(current.tensors[0][:, 0], previous.tensors[0][:, -1] + 1)
        assert torch.equal(current.tensors[0][:, 0], previous.tensors[1][:, -1])
    resets = [index for index, batch in enumerate(batches) if batch.reset_state]
    assert resets == [0, steps, 2 * steps]
    # Same layout and order every epoch (Zaremba et al. 2014; ptb_word_lm).
    for index in range(steps):
        assert torch.equal(batches[index].tensors[0], batches[steps + index].tensors[0])
        assert torch.equal(batches[index].tensors[1], batches[steps + index].tensors[1])
    # Over an epoch every row is read as one unbroken stream, each token once as an input.
    inputs = torch.cat([batch.tensors[0] for batch in batches[:steps]], dim=1)
    assert torch.equal(inputs, batchify(TOKENS, 4)[:, : steps * BPTT])


def test_resume_from_start_step_equals_the_uninterrupted_stream():
    data = BPTTStream(TOKENS, BPTT)
    whole = take(data.stream(4, seed=3), 80)
    for start in (0, 1, 34, 35, 36, 71):
        resumed = take(data.stream(4, seed=3, start_step=start), 80 - start)
        for expected, actual in zip(whole[start:], resumed, strict=True):
            assert actual.reset_state == expected.reset_state
            for mine, theirs in zip(actual.tensors, expected.tensors, strict=True):
                assert torch.equal(mine, theirs)


def test_the_seed_does_not_change_the_stream():
    data = BPTTStream(TOKENS, BPTT)
    for first, second in zip(
        take(data.stream(4, seed=0), 5), take(data.stream(4, seed=9), 5), strict=True
    ):
        assert torch.equal(first.tensors[0], second.tensors[0])


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_shards_are_contiguous_row_blocks_that_concatenate_to_the_global_batch(world_size):
    data = BPTTStream(TOKENS, BPTT)
    whole = take(data.stream(8, seed=0, start_step=3), 5)
    shards = [
        take(data.stream(8, seed=0, start_step=3, shard=(rank, world_size)), 5)
        for rank in range(world_size)
    ]
    for step, expected in enumerate(whole):
        parts = [shard[step] for shard in shards]
        assert all(part.size == 8 // world_size for part in parts)
        assert all(part.reset_state == expected.reset_state for part in parts)
        for position in range(2):
            joined = torch.cat([part.tensors[position] for part in parts])
            assert torch.equal(joined, expected.tensors[position])


def test_a_shard_must_divide_the_batch():
    with pytest.raises(ValueError, match="divisible"):
        next(BPTTStream(TOKENS, BPTT).stream(6, seed=0, shard=(0, 4)))


def test_micro_batches_keep_whole_rows():
    """The trainer splits a Batch by rows; each part must be the same rows at every step."""
    batches = take(BPTTStream(TOKENS, BPTT).stream(8, seed=0), 2)
    first, second = (batch.split(3) for batch in batches)
    assert [part.size for part in first] == [3, 3, 2]
    for before, after in zip(first, second, strict=True):
        assert torch.equal(after.tensors[0][:, 0], before.tensors[1][:, -1])


def test_token_split_counts_the_scored_tokens():
    split = TokenSplit(TOKENS, rows=10)
    assert split.scored_tokens == 10 * (100 - 1)


def test_build_data_cuts_each_split_and_sets_the_layouts():
    from reproduce.harness.run.registry import get_experiment

    experiment = get_experiment("ptb_large")
    config = {**experiment.data_defaults, "train_tokens": 5_000, "valid_tokens": 700}
    data = experiment.build_data("local", None, config)
    assert data.train.bptt == 35 and data.train.tokens.numel() == 5_000
    assert data.valid.tokens.numel() == 700 and data.valid.rows == 10
    assert data.test.tokens.numel() == 82_430  # the whole test split (Mikolov's PTB)
    assert data.info == {
        "source": "local",
        "train": 5_000,
        "valid": 700,
        "test": 82_430,
        "vocab_size": 10_000,
    }


def test_build_data_reads_the_hub_source_from_a_saved_copy(tmp_path):
    import datasets  # the test extra installs it

    from reproduce.harness.run.registry import get_experiment

    sentences = ["the cat sat", "a dog ran", "the dog sat on a cat"] * 20
    datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict({"sentence": sentences})
            for split in ("train", "validation", "test")
        }
    ).save_to_disk(str(tmp_path / "ptb"))
    experiment = get_experiment("ptb_small")
    data = experiment.build_data("hub", tmp_path, {**experiment.data_defaults, "eval_rows": 2})
    assert data.info["source"] == "hub" and data.info["vocab_size"] == 8  # 7 words and <eos>
    batch = next(data.train.stream(2, seed=0))
    assert batch.tensors[0].shape == (2, 20) and batch.reset_state
    assert data.valid.rows == 2
