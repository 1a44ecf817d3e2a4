"""Every configuration key of every experiment has a declared type and range, checked before
anything trains: a bad value, or a run that cannot fit in memory, is one line and exit 2 with
nothing written (the values of the issue's list reached the model or data first and ended in a
traceback)."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import torch

from date import Recipe
from reproduce.harness.cli.arguments import build_parser, build_spec
from reproduce.harness.cli.run import main
from reproduce.harness.run.experiment import Batch
from reproduce.harness.run.registry import experiments
from reproduce.harness.run.settings import RunSettings


def test_every_key_of_every_experiment_has_a_declared_type_and_range():
    from reproduce.harness.run.schema import RECIPE_FIELDS, RUN_FIELDS
    from reproduce.harness.run.trainer import PRECISIONS

    assert set(RECIPE_FIELDS) == {item.name for item in dataclasses.fields(Recipe)}
    assert set(RUN_FIELDS) == set(typing.get_type_hints(RunSettings))
    assert RUN_FIELDS["precision"].choices == PRECISIONS
    for name, experiment in experiments().items():
        schema = experiment.config_schema
        assert schema is not None, name
        model_keys = {*experiment.model_defaults}
        data_keys = {"source", *experiment.data_defaults}
        for preset in experiment.presets.values():
            model_keys |= set(preset.model)
            data_keys |= set(preset.data)
        assert set(schema.model) == model_keys, name
        assert set(schema.data) == data_keys, name
        assert set(schema.data["source"].choices) == set(experiment.data_sources), name


def spec_of(argv: list[str]):
    return build_spec(build_parser().parse_args(argv), argv)


@pytest.mark.parametrize(
    ("name", "preset"),
    [(name, preset) for name, e in experiments().items() for preset in e.presets],
)
def test_every_preset_passes_its_schema(name, preset, tmp_path):
    spec_of([name, "--preset", preset, "--out", str(tmp_path)])


#: The issue's values that reached the model or data before any check (a traceback, exit 1),
#: and the silent substitutions among them, each with the start of its one-line message.
REFUSED = [
    (["gnmt", "--set", "model.vocab_size=0"], "--set model.vocab_size=0: out of range"),
    (["gnmt", "--set", "data.vocab_size=-1"], "--set data.vocab_size=-1: out of range"),
    (["gnmt", "--set", "data.train_start=2000"], "data.train_start=2000, data.train_stop=1500"),
    (["gnmt", "--set", "data.beam_size=0"], "--set data.beam_size=0: out of range"),
    (["gnmt", "--set", "model.vocab_size=1000"], "model.vocab_size=1000 is below data.vocab"),
    (["gnmt", "--set", "data.corpus=wmt16", "--set", "data.eval_stop=9"], "only used with"),
    (["ptb_small", "--set", "model.init_scale=nan"], "--set model.init_scale=nan: not finite"),
    (["ptb_small", "--set", "model.vocab_size=5"], "--set model.vocab_size=5: out of range"),
    (["ptb_small", "--set", "data.eval_rows=5000"], "data.valid_tokens=2000 with data.eval"),
    (["ptb_large", "--set", "model.dropout=1"], "--set model.dropout=1: out of range"),
    (["mnist_lstm", "--set", "model.hidden_size=100000000"], "a run needs at least"),
    (["mnist_lstm", "--set", "data.train_examples=100000"], "out of range; must be an integer in"),
    (["mnist_lstm", "--set", "lr=0"], "--set lr=0: out of range; must be a finite number > 0"),
    (["mnist_lstm", "--set", "run.micro_batch_size=64"], "run.micro_batch_size=64: larger than"),
    (["imagenet_resnet50", "--set", "data.image_size=0"], "--set data.image_size=0: out of"),
    (["imagenet_resnet50", "--set", "model.label_smoothing=2"], "label_smoothing=2: out of"),
    (["imagenet_resnet50", "--set", "data.workers=-1"], "--set data.workers=-1: out of range"),
    (["imagenet_resnet50", "--set", "data.image_size=100000"], "a run needs at least"),
    (["imagenet_resnet50", "--set", "data.classes=5"], "--set data.classes=5 with data.sample"),
    (["imagenet_resnet50", "--data-dir", "."], "--data-dir . with data.sample=true"),
    (["imagenet_resnet50", "--set", "data.source=hub"], "data.source=hub with data.sample"),
]


@pytest.mark.parametrize(("arguments", "message"), REFUSED)
def test_a_bad_value_is_one_line_exit_2_and_nothing_written(arguments, message, tmp_path, capsys):
    out = tmp_path / "o"
    name, *rest = arguments
    assert main([name, "--preset", "smoke", "--quiet", "--out", str(out), *rest]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1, error
    assert message in error
    assert not out.exists()


def test_the_memory_check_compares_with_the_machine(tmp_path):
    from reproduce.harness.sweep.config_check import ConfigError, check_memory, estimated_bytes

    spec = spec_of(["mnist_lstm", "--preset", "smoke", "--out", str(tmp_path)])
    # the smoke sweep's largest micro-batch: its batch 128, within the CPU limit of 128
    total, parameters, activations = estimated_bytes(spec, 128)
    # hidden 16: 4 x 16 x (28 + 16 + 2) LSTM weights and biases, 16 x 10 + 10 in the head
    assert parameters == 4 * 16 * (28 + 16 + 2) + 170
    assert total == pytest.approx(parameters * 4 * 3 + activations)  # sgd momentum: 1 state
    check_memory(spec, available=int(total) + 1)
    with pytest.raises(ConfigError, match="but this machine has 1 KiB"):
        check_memory(spec, available=1024)


def saved_activation_bytes(model: torch.nn.Module, compute) -> int:
    """Bytes of the tensors autograd keeps for the backward pass, parameters left out."""
    seen = {(p.data_ptr(), p.numel()) for p in model.parameters()}
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        key = (tensor.data_ptr(), tensor.numel())
        if key not in seen:
            seen.add(key)
            total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        compute()
    return total


def sample_batch(name: str, model_config, data_config, size: int) -> Batch:
    generator = torch.Generator().manual_seed(0)
    if name == "mnist_lstm":
        return Batch((torch.randn(size, 28, 28), torch.randint(0, 10, (size,))))
    if name.startswith("ptb"):
        shape = (size, int(data_config["bptt"]))
        vocab = int(model_config["vocab_size"])
        return Batch(
            (torch.randint(0, vocab, shape, generator=generator),) * 2  # inputs, targets
        )
    return experiments()[name].synthetic_batch(model_config, data_config, size)


@pytest.mark.parametrize("name", sorted(experiments()))
def test_the_activation_estimate_is_a_lower_bound(name):
    """What the refusal rests on: the estimate never exceeds what the backward pass keeps."""
    experiment = experiments()[name]
    preset = experiment.presets["smoke"]
    model_config = {**experiment.model_defaults, **preset.model}
    data_config = {**experiment.data_defaults, **preset.data}
    torch.manual_seed(0)
    model = experiment.build_model(model_config)
    size = 2
    batch = sample_batch(name, model_config, data_config, size)
    kept = saved_activation_bytes(model, lambda: experiment.loss(model, batch, None))
    estimate = experiment.config_schema.activation_bytes(model_config, data_config, size)
    assert 0 < estimate <= kept


def test_a_precision_this_machine_cannot_run_is_refused_before_training(tmp_path, capsys):
    """bf16 LSTMs need CPU bf16 kernels (oneDNN on a CPU without bf16 instructions has none):
    the run trains where they exist, and is refused in one line where they do not."""
    out = tmp_path / "o"
    argv = ["mnist_lstm", "--preset", "smoke", "--quiet", "--methods", "sqrt"]
    code = main([*argv, "--batch-sizes", "32", "--set", "run.precision=bf16", "--out", str(out)])
    error = capsys.readouterr().err
    if code == 2:
        assert error.count("\n") == 1 and "--set run.precision=bf16: this machine's" in error
        assert not out.exists()
    else:
        assert code == 0, error
        assert (out / "runs" / "sqrt_b32_s0.json").is_file()


def test_a_user_set_recipe_field_the_recipe_does_not_read_is_refused(tmp_path, capsys):
    argv = ["mnist_lstm", "--preset", "smoke", "--quiet", "--out", str(tmp_path / "o")]
    assert main([*argv, "--set", "betas=0.5,0.5"]) == 2  # mnist_lstm trains with sgd
    assert "--set betas: not used with optimizer=sgd" in capsys.readouterr().err
    assert main([*argv, "--set", "milestones=0.5"]) == 2  # and poly decay
    assert "--set milestones: not used with decay=poly" in capsys.readouterr().err
