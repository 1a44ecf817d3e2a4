"""date.plan / format_plan, the `python -m date` command line, and import hygiene."""

import ast
import doctest
import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

import date
from date import METHODS, PlanRow, Recipe, format_plan, plan
from date.__main__ import doubling_ladder, main

pytestmark = pytest.mark.filterwarnings("error")

PACKAGE = pathlib.Path(date.__file__).parent
IMAGENET = Recipe(batch_size=256, lr=0.1, epochs=90, warmup_epochs=0.3125)
N = 1281167
EXAMPLE = [
    "plan",
    "--lr", "0.1",
    "--batch-size", "256",
    "--warmup-epochs", "0.3125",
    "--epochs", "90",
    "--dataset-size", "1281167",
    "--to", "32768",
]  # fmt: skip


def run_cli(*arguments):
    return subprocess.run(
        [sys.executable, "-m", "date", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def table_rows(text):
    """Parse a GitHub-format table into dicts keyed by the header."""
    lines = [line for line in text.strip().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert set(lines[1]) <= set("|-: ")
    return [
        dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        for line in lines[2:]
    ]


def test_plan_rows_for_the_imagenet_example():
    rows = plan(IMAGENET, [256, 32768], dataset_size=N)
    assert [(row.batch_size, row.method) for row in rows] == [
        (size, method) for size in (256, 32768) for method in METHODS
    ]
    by_key = {(row.batch_size, row.method): row for row in rows}
    # 32768 = 128 x 256: DATE peak 0.1 * sqrt(128) = 1.1313708..., warmup 0.3125 * 128 = 40 epochs.
    row = by_key[(32768, "date")]
    assert row.k == 128.0
    assert row.peak_lr == pytest.approx(1.1313708498984762, rel=1e-15)
    assert row.warmup_epochs == 40.0
    assert row.steps_per_epoch == N / 32768  # 39.097808837890625
    assert row.warmup_steps == pytest.approx(1563.924560546875, rel=1e-12)  # as at batch 256
    assert row.total_steps == 3518  # floor(90 * 39.0978...) = floor(3518.80)
    assert by_key[(32768, "linear")].peak_lr == pytest.approx(12.8, rel=1e-15)
    assert by_key[(32768, "linear")].warmup_steps == pytest.approx(12.2181606, rel=1e-6)
    assert by_key[(256, "date")].total_steps == 450410  # floor(90 * 5004.55859375)


def test_plan_accepts_aliases_and_reports_canonical_names():
    rows = plan(IMAGENET, [512], ["legw", "sqrt"], dataset_size=N)
    assert [row.method for row in rows] == ["date", "sqrt"]


def test_plan_raises_instead_of_dropping_invalid_rows():
    with pytest.raises(ValueError, match=r"batch_size=131072 .* warmup_epochs=160 > epochs=90"):
        plan(IMAGENET, [1024, 131072], ["sqrt", "date"], dataset_size=N)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"batch_sizes": [0]}, "batch_size must be a positive integer"),
        ({"batch_sizes": []}, "at least one batch size"),
        ({"methods": []}, "at least one scaling method"),
        ({"methods": ["cubic"]}, "method must be one of"),
        ({"dataset_size": 0}, "dataset_size must be a positive integer"),
    ],
)
def test_plan_bad_input(arguments, message):
    keywords = {"batch_sizes": [512], "methods": METHODS, "dataset_size": N, **arguments}
    with pytest.raises(ValueError, match=message):
        plan(IMAGENET, **keywords)


def test_format_plan_is_a_github_table():
    rows = plan(IMAGENET, [256, 32768], ["date"], dataset_size=N)
    text = format_plan(rows)
    parsed = table_rows(text)
    assert list(parsed[0]) == [
        "batch_size",
        "method",
        "k",
        "peak_lr",
        "warmup_epochs",
        "warmup_steps",
        "total_steps",
        "steps_per_epoch",
    ]
    assert parsed[1] == {
        "batch_size": "32768",
        "method": "date",
        "k": "128",
        "peak_lr": "1.1314",
        "warmup_epochs": "40",
        "warmup_steps": "1563.9",
        "total_steps": "3518",
        "steps_per_epoch": "39.10",
    }
    assert isinstance(rows[0], PlanRow)


@pytest.mark.parametrize(
    ("base", "target", "ladder"),
    [
        (256, 32768, [256, 512, 1024, 2048, 4096, 8192, 16384, 32768]),
        (256, 256, [256]),
        (256, 1000, [256, 512, 1000]),
        (256, 512, [256, 512]),
        (256, 64, [256, 128, 64]),
        (100, 10, [100, 50, 25, 10]),
        (3, 1, [3, 1]),
    ],
)
def test_doubling_ladder(base, target, ladder):
    assert doubling_ladder(base, target) == ladder


def test_cli_prints_the_table():
    result = run_cli(*EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = table_rows(result.stdout)
    ladder = [256, 512, 1024, 2048, 4096, 8192, 16384, 32768]
    assert [(int(row["batch_size"]), row["method"]) for row in rows] == [
        (size, method) for size in ladder for method in METHODS
    ]
    last = {row["method"]: row for row in rows if row["batch_size"] == "32768"}
    assert (last["date"]["k"], last["date"]["peak_lr"], last["date"]["warmup_epochs"]) == (
        "128",
        "1.1314",
        "40",
    )
    assert last["linear"]["peak_lr"] == "12.8" and last["linear"]["warmup_epochs"] == "0.3125"
    assert last["sqrt-nowarmup"]["warmup_epochs"] == "0"
    assert {row["warmup_steps"] for row in rows if row["method"] == "date"} == {"1563.9"}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        # The library's ValueError: DATE warmup 1 * 128 = 128 epochs > 90 at batch 32768.
        (["--warmup-epochs", "1"], "method 'date' at batch_size=32768 (k=128 x base 256)"),
        (["--batch-size", "0"], "argument --batch-size: expected a positive integer, got '0'"),
        (["--methods", "date,cubic"], "argument --methods: method must be one of"),
    ],
)
def test_cli_bad_input_exits_2_with_one_error_line(arguments, message):
    result = run_cli(*EXAMPLE, *arguments)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1


def test_cli_help():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "plan" in result.stdout and "DATE" in result.stdout


def test_cli_in_process_options(capsys):
    assert main([*EXAMPLE[:-2], "--batch-sizes", "512,1024", "--methods", "legw", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["batch_size"], row["method"]) for row in rows] == [(512, "date"), (1024, "date")]
    assert rows[1]["warmup_epochs"] == 1.25  # 0.3125 * 4


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([*EXAMPLE, "--lr", "x"], "argument --lr: invalid float value"),
        ([*EXAMPLE, "--lr", "-1"], "error: lr must be >= 0"),
        ([*EXAMPLE, "--milestones", "30,100"], "milestones[1]=100 is outside the epoch budget"),
        (
            [*EXAMPLE, "--batch-sizes", "512"],
            "argument --batch-sizes: not allowed with argument --to",
        ),
        ([*EXAMPLE[:-2], "--batch-sizes", "512,1.5"], "expected a positive integer, got '1.5'"),
        ([*EXAMPLE, "--decay", "linear"], "argument --decay: invalid choice: 'linear'"),
        ([*EXAMPLE, "--optimizer", "adam", "--momentum", "0.9"], "momentum=0.9 is not used"),
    ],
)
def test_cli_in_process_errors(capsys, arguments, message):
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(arguments))
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1


def test_cli_requires_a_command_and_batch_sizes(capsys):
    for arguments in ([], EXAMPLE[:-2]):
        with pytest.raises(SystemExit) as exit_info:
            main(arguments)
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.startswith("error: ")


def test_import_date_imports_neither_reproduce_nor_torch():
    code = (
        "import sys, date\n"
        "assert 'reproduce' not in sys.modules, 'reproduce'\n"
        "assert 'torch' not in sys.modules, 'torch'\n"
        "print(date.__version__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0.1.0"


def test_no_module_of_date_imports_reproduce():
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(name.split(".")[0] == "reproduce" for name in names), path


def test_docstring_example():
    results = doctest.testmod(date)
    assert results.attempted == 3 and results.failed == 0


def test_public_api():
    for name in date.__all__:
        if name == "BiasCorrectedLamb" and importlib.util.find_spec("pytorch_optimizer") is None:
            with pytest.raises(ImportError, match=r"pip install 'date-legw\[lars\]'"):
                getattr(date, name)
            continue
        assert getattr(date, name) is not None, name
    assert set(date.__all__) <= set(dir(date))
    with pytest.raises(AttributeError):
        date.no_such_name  # noqa: B018
