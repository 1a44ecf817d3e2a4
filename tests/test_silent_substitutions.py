"""Nothing asked for is silently replaced: each of these did something else than asked (or
nothing) without a word; now it does what was asked or exits 2 in one line. (The ImageNet sample
with --data-dir, run.micro_batch_size above the batch and lr=0 are in test_config_schema.py.)"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from date.__main__ import main as date_main
from reproduce.harness.cli.run import main
from reproduce.harness.cli.tune import main as main_tune

REPO = Path(__file__).resolve().parents[1]
NEWSTEST = REPO / "data" / "wmt14_ende"
GNMT = ["gnmt", "--preset", "smoke", "--quiet", "--methods", "sqrt", "--batch-sizes", "16"]


def newstest_folder(folder: Path, sides: tuple[str, ...], empty: bool = False) -> Path:
    folder.mkdir()
    for side in sides:
        target = folder / f"newstest2014.{side}"
        if empty:
            target.write_bytes(b"")
        else:
            with gzip.open(NEWSTEST / f"newstest2014.{side}.gz", "rb") as source:
                target.write_bytes(source.read())
    return folder


@pytest.mark.parametrize(
    ("sides", "empty", "message"),
    [
        (("en",), False, "has newstest2014.en but not newstest2014.de"),
        (("en", "de"), True, "hold no sentence"),
        ((), False, "has no newstest2014.en or newstest2014.de"),
    ],
)
def test_a_data_dir_without_a_whole_newstest_is_refused_not_replaced_by_the_shipped_one(
    tmp_path, capsys, sides, empty, message
):
    folder = newstest_folder(tmp_path / "data", sides, empty)
    out = tmp_path / "o"
    assert main([*GNMT, "--data-dir", str(folder), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
    assert not out.exists()


def test_a_data_dir_with_newstest_is_read(tmp_path):
    """The files of --data-dir are what is trained on (their origin is recorded)."""
    folder = newstest_folder(tmp_path / "data", ("en", "de"))
    from reproduce.gnmt import experiment as gnmt

    text, _, _ = gnmt._texts(
        "local", folder, {**gnmt.DATA_DEFAULTS, **gnmt.SMOKE.data, "train_stop": 10}
    )
    assert text.origin.startswith(str(folder))


@pytest.mark.parametrize("entry", [main, main_tune])
def test_max_parallel_0_is_refused_not_ignored(entry, tmp_path, capsys):
    argv = ["mnist_lstm", "--preset", "smoke", "--max-parallel", "0", "--out", str(tmp_path)]
    assert entry(argv) == 2
    assert "--max-parallel" in capsys.readouterr().err


def test_plan_to_a_batch_below_the_base_says_so(capsys):
    recipe = ["plan", "--lr", "0.1", "--batch-size", "256", "--epochs", "10"]
    argv = [*recipe, "--dataset-size", "60000", "--methods", "date"]
    assert date_main([*argv, "--to", "128"]) == 0
    captured = capsys.readouterr()
    assert "note: --to 128 is below --batch-size 256" in captured.err
    assert "|          128 | date" in captured.out  # the ladder asked for
    assert date_main([*argv, "--to", "512"]) == 0
    assert capsys.readouterr().err == ""
