"""Property (hypothesis): whatever value ``--set`` gives any key of any experiment, the command
trains, or exits 2 with one line and writes nothing; never a traceback, never a record of a run
it refused.

Two levels, so that every key is covered and the test stays short:

- every (experiment, key) pair gets drawn values, inside and outside its declared range and of
  the wrong type, through the whole command line up to the point where training would start
  (the sweep itself is replaced by a recorder): exit 0 there means the run would train;
- per experiment, a few drawn values inside the range (no larger than the preset's, so a
  run takes seconds) go through real training: they train, and every record is "ok" or
  "diverged", never an evaluation failure; or they exit 2 in one line with nothing written (a
  fact only the data shows, such as a split smaller than one batch).

The examples are derandomized, so every run of the suite checks the same values.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reproduce.harness.cli import run as cli
from reproduce.harness.run.registry import experiments


def smoke_batch(name: str) -> int:
    """The smoke preset's base batch (its smallest)."""
    return experiments()[name].presets["smoke"].batch_sizes[0]


#: Smaller runs for the training level: gnmt's smoke runs 40 steps and two searches; 8 steps and
#: the beam search do.
FASTER = {
    "gnmt": ["--set", "epochs=2", "--set", "milestones=1.5", "--set", "data.greedy_bleu=false"]
}
#: A folder for a subword cache drawn as a value (never the working directory).
CACHE = Path(tempfile.gettempdir()) / "date-repro-property-cache"


def keys_of(name: str, preset: str = "smoke") -> dict[str, Any]:
    """Every key ``--set`` reaches in ``preset``, with its declared field."""
    from reproduce.harness.run.schema import RECIPE_FIELDS, RUN_FIELDS

    experiment = experiments()[name]
    schema = experiment.config_schema
    settings_of = experiment.presets[preset]
    model = {**experiment.model_defaults, **settings_of.model}
    data = {"source": "local", **experiment.data_defaults, **settings_of.data}
    return {
        **RECIPE_FIELDS,
        **{f"model.{key}": field for key, field in schema.model.items() if key in model},
        **{f"data.{key}": field for key, field in schema.data.items() if key in data},
        **{f"run.{key}": field for key, field in RUN_FIELDS.items()},
    }


def every_key(name: str) -> dict[str, str]:
    """Every key of ``name``'s schema, with the preset it is drawn in: smoke, or the first
    preset that has it (ImageNet's proxy keys)."""
    found: dict[str, str] = {}
    for preset in ("smoke", *experiments()[name].presets):
        for key in keys_of(name, preset):
            found.setdefault(key, preset)
    return found


def preset_value(name: str, preset: str, key: str) -> Any:
    """The value ``preset`` runs ``key`` at."""
    from reproduce.harness.run.settings import RunSettings

    experiment = experiments()[name]
    settings_of = experiment.presets[preset]
    namespace, _, short = key.rpartition(".")
    if namespace == "model":
        return {**experiment.model_defaults, **settings_of.model}[short]
    if namespace == "data":
        return {"source": "local", **experiment.data_defaults, **settings_of.data}[short]
    if namespace == "run":
        return getattr(RunSettings(), short)
    return getattr(experiment.recipe_for(preset), key)


def number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


def inside(field, current: Any) -> st.SearchStrategy[str]:
    """Values inside ``field``'s range, no larger than ``current`` (the smoke preset's) where
    that is inside it, as ``--set`` text."""
    if field.sequence:
        single = dataclasses.replace(field, sequence=False, length=None, optional=False)
        item = inside(single, None)
        sizes = (field.length, field.length) if field.length else (0, 3)
        values = st.lists(item, min_size=sizes[0], max_size=sizes[1]).map(",".join)
    elif field.kind is bool:
        values = st.sampled_from(["true", "false"])
    elif field.choices:
        values = st.sampled_from([str(choice) for choice in field.choices])
    elif field.kind is str:
        values = st.sampled_from(["", str(CACHE)])
    else:
        low = field.low if field.low is not None else -10.0
        cap = current if isinstance(current, (int, float)) and not isinstance(current, bool) else 0
        high = max(low + 1, cap)
        if field.high is not None:
            high = min(high, field.high)
        if field.kind is int:
            values = st.integers(math.ceil(low + field.low_open), math.floor(high)).map(str)
        else:
            values = st.floats(
                low, high, exclude_min=field.low_open, exclude_max=field.high_open
            ).map(number_text)
    return st.one_of(values, st.just("none")) if field.optional else values


def outside(field) -> st.SearchStrategy[str]:
    """Values of the wrong type, not finite, or just outside the range, as ``--set`` text."""
    wrong = ["abc", "nan", "inf", "-inf", "1e999", "0x10"]
    if field.kind is bool:
        wrong += ["2", "maybe", ""]
    elif field.choices:
        wrong += ["no-such-choice", ""]
    elif field.kind is str:
        wrong = ["a\x00b"]
    else:
        wrong += [""]
        if field.kind is int:
            wrong += ["1.5", "2e3"]
        if field.low is not None:
            wrong += [number_text(field.low - (1 if field.kind is int else 1e-3))]
            if field.low_open:
                wrong.append(number_text(field.low))
        if field.high is not None:
            wrong += [number_text(field.high + 1)]
            if field.high_open:
                wrong.append(number_text(field.high))
    if not field.optional:
        wrong.append("none")
    return st.sampled_from(wrong)


def run(argv: list[str]) -> tuple[int, str]:
    """``reproduce/run.py argv`` in this process: (exit code, stderr). An exception escaping it
    would be a traceback for the user, and fails the test."""
    error = io.StringIO()
    with contextlib.redirect_stderr(error), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(argv)
    return code, error.getvalue()


def assert_refused_cleanly(code: int, error: str, out: Path) -> None:
    assert code == 2, (code, error)
    assert error.startswith("error: ") and error.count("\n") == 1, error
    assert not (out / "runs").exists() and not (out / "checkpoints").exists()


COMMON = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
PAIRS = [
    (name, preset, key)
    for name in sorted(experiments())
    for key, preset in sorted(every_key(name).items())
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """data.source=hub is a drawn value: without network it must fail fast and cleanly."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.mark.parametrize(("name", "preset", "key"), PAIRS, ids=[f"{n}-{k}" for n, _, k in PAIRS])
def test_any_value_of_any_key_would_train_or_is_refused_in_one_line(name, preset, key):
    field = keys_of(name, preset)[key]

    @settings(COMMON, max_examples=3)
    @given(text=st.one_of(inside(field, preset_value(name, preset, key)), outside(field)))
    def check(text: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "o"
            started = []
            argv = [name, "--preset", preset, "--quiet", "--out", str(out)]
            with mock.patch.object(cli, "run_sweep", lambda spec, **_: started.append(spec)):
                code, error = run([*argv, "--set", f"{key}={text}"])
            if code == 0:
                assert started and error == "", error  # it would train
            else:
                assert_refused_cleanly(code, error, out)

    check()


#: Trainings per experiment (each takes seconds): the budget of the second level.
TRAININGS = {"mnist_lstm": 4, "ptb_small": 3, "ptb_large": 2, "gnmt": 2, "imagenet_resnet50": 2}


@pytest.mark.parametrize("name", sorted(TRAININGS))
def test_values_inside_the_ranges_train_or_are_refused_in_one_line(name):
    keys = keys_of(name)
    outcomes = []

    @settings(COMMON, max_examples=TRAININGS[name])
    @given(data=st.data())
    def check(data) -> None:
        key = data.draw(st.sampled_from(sorted(keys)), label="key")
        text = data.draw(inside(keys[key], preset_value(name, "smoke", key)), label="value")
        batch = ["--methods", "sqrt", "--batch-sizes", str(smoke_batch(name))]
        argv = [name, "--preset", "smoke", "--quiet", *batch, *FASTER.get(name, [])]
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "o"
            code, error = run([*argv, "--out", str(out), "--set", f"{key}={text}"])
            outcomes.append((key, text, code))
            if code == 2:
                assert_refused_cleanly(code, error, out)
                return
            assert code == 0, (code, error)
            records = [json.loads(path.read_text()) for path in (out / "runs").glob("*.json")]
            assert records and {record["status"] for record in records} <= {"ok", "diverged"}
            assert not (out / "unfinished").exists()

    check()
    assert any(code == 0 for _, _, code in outcomes), outcomes  # some draw trained
