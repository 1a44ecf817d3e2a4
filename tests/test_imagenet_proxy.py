"""imagenet_resnet50 --preset proxy: the experiment's ResNet-50 and LARS recipe on shipped MNIST
digits. The digits loader (shapes, labels, disjoint splits, determinism, bad settings), the plan
(base, x16 and x64 with DATE's scaling of the NUS recipe), a smoke-sized run of the real code
path, and the label "proxy at small scale, not the paper's setting" from the preset through the
records to every verdict of the reports and the README section."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest
import torch
from test_report import make_record, write_records

from reproduce.datasets.integrity import DataError
from reproduce.datasets.mnist import load_mnist
from reproduce.harness import report
from reproduce.harness.cli.arguments import build_parser, build_spec
from reproduce.harness.cli.run import main
from reproduce.harness.report import job_summary, sweep_info
from reproduce.harness.report.readme import readme_results_section
from reproduce.harness.run.experiment import PROXY_LABEL
from reproduce.harness.run.registry import get_experiment
from reproduce.harness.sweep.planning import plan_runs
from reproduce.imagenet_resnet50 import digits
from reproduce.imagenet_resnet50 import experiment as definition

EXPERIMENT = get_experiment("imagenet_resnet50")
PROXY = EXPERIMENT.presets["proxy"]
#: torchvision's ResNet-50 with a 10-way classifier: 25,557,032 - 2048 x 990 - 990.
RESNET50_10_CLASSES = 23_528_522


def proxy_data_config(**changes) -> dict:
    return {**EXPERIMENT.data_defaults, **PROXY.data, **changes}


@pytest.fixture(scope="module")
def bundle():
    return EXPERIMENT.build_data("local", None, proxy_data_config())


def image_hashes(images: torch.Tensor) -> set[str]:
    return {hashlib.sha256(image.numpy().tobytes()).hexdigest() for image in images}


# ------------------------------------------------------------------------------------ the data


def test_the_splits_have_the_presets_sizes_shapes_and_labels(bundle):
    train, valid, test = bundle.train, bundle.valid, bundle.test
    assert (train.size, len(valid), len(test)) == (1024, 500, 2000)
    assert bundle.info["dataset"] == "mnist"
    images, labels = train.tensors
    for split_images, split_labels in ((images, labels), (valid.images, valid.labels)):
        assert split_images.dtype == torch.uint8 and split_images.shape[1:] == (3, 32, 32)
        assert split_labels.dtype == torch.int64
        assert int(split_labels.min()) >= 0 and int(split_labels.max()) <= 9
    assert set(labels.tolist()) == set(range(10))  # every digit is in the training split
    assert test.images.shape == (2000, 3, 32, 32) and set(test.labels.tolist()) == set(range(10))


def test_each_image_is_the_mnist_digit_padded_and_copied_to_three_channels(bundle):
    mnist_images, mnist_labels = load_mnist(split="train")
    images, labels = bundle.train.tensors
    original = (mnist_images[:1024] * 255).round().to(torch.uint8)
    assert torch.equal(images[:, 0, 2:30, 2:30], original)  # the 28x28 digit, centred
    assert torch.equal(images[:, 1], images[:, 0]) and torch.equal(images[:, 2], images[:, 0])
    border = images.clone()
    border[:, :, 2:30, 2:30] = 0
    assert int(border.count_nonzero()) == 0  # zero padding around it
    assert torch.equal(labels, mnist_labels[:1024])
    assert torch.equal(bundle.valid.labels, mnist_labels[55_000:55_500])


def test_train_validation_and_test_share_no_image(bundle):
    train = image_hashes(bundle.train.tensors[0])
    valid, test = image_hashes(bundle.valid.images), image_hashes(bundle.test.images)
    assert not train & valid and not train & test and not valid & test
    assert len(train) > 1000  # the hashes tell images apart (a few digits may repeat)


def test_the_data_and_the_training_stream_are_deterministic(bundle):
    again = EXPERIMENT.build_data("local", None, proxy_data_config())
    assert torch.equal(again.train.tensors[0], bundle.train.tensors[0])
    assert torch.equal(again.test.images, bundle.test.images)
    first = [b.tensors[1] for b in itertools.islice(bundle.train.stream(8, seed=3), 5)]
    second = [b.tensors[1] for b in itertools.islice(again.train.stream(8, seed=3), 5)]
    resumed = next(again.train.stream(8, seed=3, start_step=4)).tensors[1]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert torch.equal(resumed, first[4])
    other_seed = next(bundle.train.stream(8, seed=4)).tensors[1]
    assert not torch.equal(other_seed, first[0])


def test_evaluation_batches_cover_the_split_once_in_order(bundle):
    seen = list(bundle.valid.batches())
    assert [len(labels) for _, labels in seen] == [500]  # eval_batch_size 500
    split = digits.DigitSplit(bundle.valid.images, bundle.valid.labels, batch_size=96)
    labels = torch.cat([labels for _, labels in split.batches()])
    assert torch.equal(labels, bundle.valid.labels)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"image_size": 24}, "data.image_size=24"),
        ({"train_examples": 55_001}, "data.train_examples=55001"),
        ({"valid_examples": 0}, "data.valid_examples=0"),
        ({"dataset": "cifar"}, "data.dataset='cifar': valid choices: imagenet, mnist"),
    ],
)
def test_bad_proxy_data_settings_are_named(changes, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        EXPERIMENT.build_data("local", None, proxy_data_config(**changes))


def test_a_bad_proxy_setting_exits_2_with_one_line(capsys, tmp_path):
    code = main(
        [
            *("imagenet_resnet50", "--preset", "proxy", "--set", "data.image_size=16"),
            *("--out", str(tmp_path / "out"), "--quiet"),
        ]
    )
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "data.image_size=16" in error
    assert not (tmp_path / "out" / "runs").exists()


# ------------------------------------------------------------------------------------ the plan


def test_the_proxy_plans_base_x16_and_x64_with_date_sqrt_linear_and_two_seeds():
    spec = build_spec(build_parser().parse_args(["imagenet_resnet50", "--preset", "proxy"]), [])
    runs = plan_runs(spec)
    base = definition.PROXY_BASE_BATCH
    assert PROXY.batch_sizes == (base, 16 * base, 64 * base)
    assert EXPERIMENT.train_examples(spec.data_config) >= 64 * base  # a step per epoch at x64
    cells = {(run.method, run.batch_size): 0 for run in runs}
    for run in runs:
        cells[(run.method, run.batch_size)] += 1
    assert cells == {(m, b): 2 for m in ("date", "sqrt", "linear") for b in PROXY.batch_sizes}
    assert sum(run.same_run_as is None for run in runs) == 14  # k = 1 is trained once per seed
    recipes = {(run.method, run.batch_size): run.recipe for run in runs}
    nus = EXPERIMENT.base_recipe
    x64 = recipes[("date", 64 * base)]
    # The NUS recipe (LARS, lr 2^2, poly power 2, label smoothing) scaled by DATE: lr x sqrt(k),
    # warmup x k, reaching NUS's share of the budget at x64 (10 of 90 epochs).
    assert (x64.optimizer, x64.decay, x64.poly_power) == (nus.optimizer, "poly", 2.0)
    assert recipes[("date", base)].lr == nus.lr and x64.lr == pytest.approx(nus.lr * 8)
    assert x64.warmup_epochs / x64.epochs == pytest.approx(10 / 90)
    assert recipes[("linear", 64 * base)].lr == pytest.approx(nus.lr * 64)
    assert recipes[("sqrt", 64 * base)].warmup_epochs == recipes[("date", base)].warmup_epochs
    assert spec.model_config["label_smoothing"] == 0.1 and spec.model_config["classes"] == 10


def test_the_proxy_plan_prints_every_run_and_its_cost(capsys):
    assert main(["imagenet_resnet50", "--preset", "proxy", "--plan", "--estimate"]) == 0
    out = capsys.readouterr().out
    assert "Training examples per epoch: 1,024 (declared)" in out
    assert "Whole sweep: 14 runs to train" in out


# ------------------------------------------------------------------ a smoke-sized proxy sweep

SMOKE_ARGUMENTS = [
    "imagenet_resnet50",
    "--preset",
    "proxy",
    "--batch-sizes",
    "4,16",
    "--methods",
    "date,linear",
    "--seeds",
    "1",
    "--set",
    "batch_size=4",
    "--set",
    "epochs=1",
    "--set",
    "warmup_epochs=0.125",
    "--set",
    "data.train_examples=32",
    "--set",
    "data.valid_examples=8",
    "--set",
    "data.test_examples=8",
    "--quiet",
]


@pytest.fixture(scope="module")
def smoke_sweep(tmp_path_factory) -> Path:
    """The proxy's real code path at smoke size: 8 steps at batch 4, 2 at batch 16 per method."""
    root = tmp_path_factory.mktemp("proxy") / "results"
    out = root / "imagenet_resnet50" / "proxy"
    assert main([*SMOKE_ARGUMENTS, "--out", str(out)]) == 0
    return out


def test_the_smoke_sized_proxy_trains_the_real_resnet50_on_the_digits(smoke_sweep):
    records = report.load_records(smoke_sweep)
    assert {(r["method"], r["batch_size"]) for r in records} == {
        ("date", 4),
        ("linear", 4),
        ("date", 16),
        ("linear", 16),
    }
    for record in records:
        # 8 steps leave batch norm's running statistics far from the data, so the evaluation's
        # cross-entropy may exceed the chance limit: such a run is recorded as diverged, by that
        # rule, and never as a result
        assert 0.0 <= record["final"]["top1"] <= 1.0
        if record["status"] != "ok":
            assert record["status"] == "diverged", record["status"]
            assert "far worse than chance" in record["divergence"]["reason"]
        assert record["model_parameters"] == RESNET50_10_CLASSES
        assert record["recipe"]["optimizer"] == "lars"
        assert record["data"]["dataset"] == "mnist" and record["data"]["train"] == 32
        assert record["proxy"] == {"label": PROXY_LABEL, "setting": PROXY.proxy}
    trained = [r for r in records if not r["same_run_as"]]
    assert sorted(r["total_steps"] for r in trained) == [2, 2, 8]


def test_the_proxy_label_stands_beside_every_verdict_of_the_reports(smoke_sweep):
    diff = json.loads((smoke_sweep / "paper_diff.json").read_text())
    assert diff["proxy"]["label"] == PROXY_LABEL
    assert all(row["proxy"] == PROXY_LABEL for row in diff["rows"])
    markdown = (smoke_sweep / "paper_diff.md").read_text()
    verdict_lines = [
        line
        for line in markdown.splitlines()
        if line.startswith("| ") and any(f"| {v}" in line for v in report.VERDICTS)
    ]
    assert len(verdict_lines) == len(diff["rows"])
    assert all(f"({PROXY_LABEL})" in line for line in verdict_lines)
    # The paper's reference values are listed, never set against the digits.
    targets = [row for row in diff["rows"] if row["kind"] == "target"]
    assert targets and all(
        row["verdict"] == "not applicable" and row["n"] == 0 and row["ours"] is None
        for row in targets
    )
    assert PROXY_LABEL in report.judged_headline(
        report.verdict_counts(diff["rows"]), diff["proxy"]["label"]
    )
    for name in ("tables.md", "paper_diff.md", "speedup.md"):
        assert PROXY.proxy in (smoke_sweep / name).read_text(), name
    lines = job_summary.summary_lines(smoke_sweep)
    assert any(PROXY_LABEL in line for line in lines if line.startswith("paper diff"))
    claims = [line for line in lines if "paper claim" in line]
    assert claims and all(PROXY_LABEL in line for line in claims)


def test_the_readme_section_shows_the_proxy_as_a_proxy(smoke_sweep):
    section = readme_results_section(smoke_sweep.parents[1], link_prefix="results")
    assert "### imagenet_resnet50 / proxy" in section
    assert PROXY.proxy in section
    table = [line for line in section.splitlines() if line.startswith("| claim")]
    assert table and all(line.rstrip(" |").endswith(f"({PROXY_LABEL})") for line in table)
    assert f"{PROXY_LABEL}." in section  # the verdict counts' sentence
    # The paper's references are not set against the digits, in the README either.
    assert not [line for line in section.splitlines() if line.startswith("| target")]
    targets = len(EXPERIMENT.targets)
    assert f"The paper's {targets} reference values are listed in [paper_diff.md]" in section


# --------------------------------------------------------------- the label, from records alone


def test_records_of_another_preset_have_no_label_and_records_must_agree():
    plain = [make_record("date", 128, seed) for seed in range(2)]
    assert sweep_info(plain).proxy is None
    labelled = [{**r, "proxy": {"label": "a stand-in", "setting": "toy digits"}} for r in plain]
    assert sweep_info(labelled).proxy_label == "a stand-in"  # read from the records, not a name
    with pytest.raises(ValueError, match="records disagree on proxy"):
        sweep_info([plain[0], labelled[1]])


def test_a_malformed_proxy_field_names_the_record(tmp_path):
    record = {**make_record("date", 128, 0), "proxy": "yes"}
    write_records(tmp_path, [record])
    with pytest.raises(ValueError, match=r"date_b128_s0\.json: proxy must be null"):
        report.load_records(tmp_path)
