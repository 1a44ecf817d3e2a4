"""date.global_batch_size / date.scale_to_setup and `python -m date plan --per-device-batch`."""

import json

import pytest

import date
from date.__main__ import main

pytestmark = pytest.mark.filterwarnings("error")

BASE = date.Recipe(batch_size=256, lr=0.1, epochs=90, warmup_epochs=0.3125)
PLAN = ["plan", "--lr", "0.1", "--batch-size", "256", "--warmup-epochs", "0.3125", "--epochs", "90",
        "--dataset-size", "1281167"]  # fmt: skip


def test_global_batch_is_the_product_of_the_setup():
    assert date.global_batch_size(32) == 32
    assert date.global_batch_size(32, accumulation_steps=4, world_size=64) == 8192
    assert date.global_batch_size(per_device_batch=7, accumulation_steps=3, world_size=5) == 105


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ((0, 1, 1), "per_device_batch"),
        ((32, 0, 1), "accumulation_steps"),
        ((32, 1, -2), "world_size"),
        ((32, 1.5, 1), "accumulation_steps"),
        ((32, 1, True), "world_size"),
    ],
)
def test_global_batch_rejects_a_bad_setup_naming_the_argument(arguments, name):
    with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
        date.global_batch_size(*arguments)


def test_scale_to_setup_is_scale_at_the_global_batch():
    # 1 GPU at the base batch 256 moved to 64 GPUs x 32 per device x 4 accumulation steps = 8192:
    # k = 32, so DATE gives lr 0.1 * sqrt(32) and warmup 0.3125 * 32 = 10 epochs.
    scaled = date.scale_to_setup(BASE, per_device_batch=32, accumulation_steps=4, world_size=64)
    assert scaled == date.scale(BASE, 8192)
    assert scaled.batch_size == 8192
    assert scaled.lr == pytest.approx(0.1 * 32**0.5, rel=1e-15)
    assert scaled.warmup_epochs == 10.0
    linear = date.scale_to_setup(BASE, per_device_batch=128, world_size=4, method="linear")
    assert (linear.batch_size, linear.lr, linear.warmup_epochs) == (512, 0.2, 0.3125)


def test_cli_plan_from_the_setup(capsys):
    setup = ["--per-device-batch", "32", "--accumulation-steps", "4", "--world-size", "64"]
    assert main([*PLAN, *setup, "--methods", "date"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "Global batch 8192 = 32 per device x 4 accumulation steps x 64 processes: "
        "k = 32 over the base batch 256.\n"
    )
    assert main([*PLAN, *setup, "--methods", "date", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["batch_size"], row["k"]) for row in rows] == [(256, 1.0), (8192, 32.0)]
    assert rows[1]["warmup_epochs"] == 10.0
    # Accumulation and world size default to 1; a setup at the base batch gives one row.
    assert main([*PLAN, "--per-device-batch", "256", "--methods", "date", "--json"]) == 0
    assert [row["batch_size"] for row in json.loads(capsys.readouterr().out)] == [256]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--to", "512", "--world-size", "4"], "--world-size: only with --per-device-batch"),
        (
            ["--batch-sizes", "512", "--accumulation-steps", "2", "--world-size", "4"],
            "--accumulation-steps, --world-size: only with --per-device-batch",
        ),
        (["--per-device-batch", "32", "--world-size", "0"], "--world-size: expected a positive"),
        (["--per-device-batch", "32", "--to", "512"], "not allowed with argument"),
    ],
)
def test_cli_setup_errors_exit_2_with_one_line(capsys, arguments, message):
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main([*PLAN, *arguments]))
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1
