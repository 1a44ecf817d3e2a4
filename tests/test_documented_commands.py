"""Every command the README and docs/ show runs, on a fresh clone's files, and exits 0.

The commands are the indented command lines of README.md and docs/*.md (continuation lines
joined; fenced Python blocks are the library example, run by test_readme_example.py). Each one is
either run as written, or run through the explicit table below: a command that would train for
hours, needs a GPU, a TPU, a cluster or data that is not shipped is mapped to the same command
with small settings (``--plan``, smoke, a data slice), and a command that only makes sense on
other machines (gcloud, ray start, pip) is listed with the reason it is not run here. Nothing is
skipped silently: a command found in the text and in neither table is run as written, and an
entry of a table that no longer matches a command in the text fails the test.

"Fresh clone": the files git tracks, as they are in this working tree, copied to a temporary
folder (no runs/, no untracked records), with the project's environment on PATH as
``source .venv/bin/activate`` puts it there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = ("README.md", *sorted(f"docs/{path.name}" for path in (REPO / "docs").glob("*.md")))

#: Commands run with other arguments, and why (the text's command -> what runs here).
SMALLER = {
    # The main job trains the quick preset for minutes: the smoke preset takes the same path
    # (own runs/ folder, verdicts, comparison with results/ when published) in seconds.
    "bin/reproduce mnist_lstm": "python reproduce/run.py mnist_lstm --preset smoke",
    # The synopsis of the CLI: its help.
    "python reproduce/run.py EXPERIMENT [--methods none,linear,sqrt,date,...] [--batch-sizes ...] "
    "[--preset smoke|quick|full|budget|proxy] [--seeds N] [--device cpu|cuda|tpu] "
    "[--data-dir PATH] [--out DIR] [--plan] [--estimate] [--set key=value ...] [--resume] "
    "[--quiet] [--launcher ray|slurm|local] [--max-parallel N] [--shard I/N]": (
        "python reproduce/run.py --help"
    ),
    # Budget sweeps train for hours: their plans.
    "python reproduce/run.py mnist_lstm --preset budget": (
        "python reproduce/run.py mnist_lstm --preset budget --plan"
    ),
    "python reproduce/run.py ptb_small --preset budget": (
        "python reproduce/run.py ptb_small --preset budget --plan"
    ),
    "python reproduce/run.py ptb_small --preset full_budget": (
        "python reproduce/run.py ptb_small --preset full_budget --plan"
    ),
    # One epoch of the full base recipe on 1,024 MNIST examples (8 steps) instead of 55,000; the
    # record keeps its name (none_b128_s0.json), which the next command reads.
    "python reproduce/advise.py mnist_lstm [--epochs 1] [--micro-batch 32] [--preset full]": (
        "python reproduce/advise.py mnist_lstm --epochs 1 --micro-batch 32 --preset full "
        "--set data.train_examples=1024 --set data.valid_examples=256 "
        "--set data.test_examples=256"
    ),
    # Needs ImageNet's official archives: its help.
    "python -m reproduce.datasets.imagenet prepare --train-tar ILSVRC2012_img_train.tar "
    "--val-tar ILSVRC2012_img_val.tar --val-labels ILSVRC2012_devkit_t12.tar.gz --out DIR": (
        "python -m reproduce.datasets.imagenet prepare --help"
    ),
    # Needs CUDA and ImageNet: its help.
    "python -m reproduce.imagenet_resnet50.loader_speed --device cuda --precision bf16 "
    "--data-dir DIR": "python -m reproduce.imagenet_resnet50.loader_speed --help",
    # GPUs (torchrun, CUDA) and data not shipped: the same sweep's plan on this machine.
    "torchrun --standalone --nproc_per_node=8 reproduce/run.py mnist_lstm --preset full "
    "--device cuda": "python reproduce/run.py mnist_lstm --preset full --plan",
    "torchrun --standalone --nproc_per_node=8 reproduce/run.py ptb_small --preset full --device "
    "cuda --batch-sizes 40,80,160,320,640,1280": (
        "python reproduce/run.py ptb_small --preset full --batch-sizes 40,80,160,320,640,1280 "
        "--plan"
    ),
    "torchrun --standalone --nproc_per_node=4 reproduce/run.py ptb_small --preset full --device "
    "cuda --batch-sizes 20": (
        "python reproduce/run.py ptb_small --preset full --batch-sizes 20 --plan"
    ),
    "torchrun --standalone --nproc_per_node=8 reproduce/run.py imagenet_resnet50 --preset full "
    "--device cuda --data-dir /data/imagenet --set run.precision=bf16": (
        "python reproduce/run.py imagenet_resnet50 --preset full --set run.precision=bf16 --plan"
    ),
    "torchrun --standalone --nproc_per_node=8 reproduce/run.py gnmt --preset full --device cuda "
    "--data-dir /data/wmt16_de_en": "python reproduce/run.py gnmt --preset full --plan",
    # Cloud TPU (torch_xla in .venv-xla): the same sweep's plan.
    "PJRT_DEVICE=TPU .venv-xla/bin/python xla/launch.py reproduce/run.py mnist_lstm --preset "
    "full --device tpu": "python reproduce/run.py mnist_lstm --preset full --plan",
    "PJRT_DEVICE=TPU .venv-xla/bin/python xla/launch.py reproduce/run.py imagenet_resnet50 "
    "--preset full --device tpu --data-dir /data/imagenet --set run.precision=bf16 "
    "--set data.workers=6": (
        "python reproduce/run.py imagenet_resnet50 --preset full --set run.precision=bf16 "
        "--set data.workers=6 --plan"
    ),
    "PJRT_DEVICE=TPU .venv-xla/bin/python xla/launch.py reproduce/run.py gnmt --preset full "
    "--device tpu --data-dir /data/wmt16_de_en": (
        "python reproduce/run.py gnmt --preset full --plan"
    ),
    # Clusters: the plan, with the launcher's own settings still parsed and checked.
    "python reproduce/run.py ptb_small --preset full --launcher slurm --max-parallel 32 "
    "--set launch.slurm_partition=cpu --set launch.cpus_per_run=4 "
    "--out /shared/results/ptb_small/full": (
        "python reproduce/run.py ptb_small --preset full --launcher slurm --max-parallel 32 "
        "--set launch.slurm_partition=cpu --set launch.cpus_per_run=4 --plan"
    ),
    "RAY_ADDRESS=HEAD_IP:6379 python reproduce/run.py ptb_small --preset full --launcher ray "
    "--set launch.cpus_per_run=4 --out /shared/results/ptb_small/full": (
        "python reproduce/run.py ptb_small --preset full --launcher ray "
        "--set launch.cpus_per_run=4 --plan"
    ),
    "python reproduce/run.py ptb_small --preset full --device cuda --launcher ray "
    "--max-parallel 8": (
        "python reproduce/run.py ptb_small --preset full --launcher ray --max-parallel 8 --plan"
    ),
    "python reproduce/run.py ptb_small --preset full --device cuda --launcher local "
    "--max-parallel 8": (
        "python reproduce/run.py ptb_small --preset full --launcher local --max-parallel 8 --plan"
    ),
    "python reproduce/run.py ptb_small --preset full --out /shared/results/ptb_small/full --shard "
    '"$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT"': (
        "python reproduce/run.py ptb_small --preset full --shard 0/16 --plan"
    ),
}

#: Commands not run here, and why.
ELSEWHERE = {
    "bin/test": "the test suite itself (this test is part of it)",
    "gcloud compute tpus tpu-vm create NAME --zone=ZONE --accelerator-type=v3-8 "
    "--version=tpu-ubuntu2204-base": "Google Cloud: creates a TPU VM",
    "gcloud compute tpus tpu-vm ssh NAME --zone=ZONE": "Google Cloud: logs into the TPU VM",
    "git clone REPO date-repro && cd date-repro": "on the TPU VM (REPO is the user's URL)",
    "XLA_TORCH_XLA='torch_xla[tpu]==2.9.0' bash xla/setup_env.sh": (
        "downloads torch_xla for TPU into .venv-xla (several GB)"
    ),
    'gcloud compute tpus tpu-vm ssh NAME --zone=ZONE --worker=all --command="cd date-repro && '
    "PJRT_DEVICE=TPU .venv-xla/bin/python xla/launch.py reproduce/run.py mnist_lstm --preset full "
    '--device tpu --out /shared/results/mnist_lstm/full"': "Google Cloud: every host of a pod",
    'pip install -e ".[cluster]"': "installs into the environment (the test extra has it)",
    "pip install ./library": "installs into the environment (bin/setup has it, editable; "
    ".ci/library_stage.sh installs the wheel in fresh environments)",
    "pip install './library[lars]'": "installs into the environment (the suite depends on it)",
    "pip install './library[lightning]'": "installs into the environment (.ci/library_stage.sh "
    "installs every extra and runs their tests)",
    "ray start --head --port=6379": "starts a Ray head node",
    "ray start --address=HEAD_IP:6379": "joins a Ray cluster",
    "#!/bin/bash": "a line of the SLURM job script shown",
    "#SBATCH --array=0-15 --cpus-per-task=4 --time=24:00:00 --requeue": "SLURM directive",
    "export OMP_NUM_THREADS=4": "a line of the SLURM job script shown",
}

#: Indented blocks that are not commands, by their first line.
NOT_COMMANDS = ("date/          the algorithm",)  # the README's layout


def documented_commands() -> list[tuple[str, str]]:
    """(page, command) for every line of an indented block of the pages (a block starts after a
    blank line), comments stripped and continuation lines joined."""
    found = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", (REPO / page).read_text(encoding="utf-8"), flags=re.S)
        lines = text.split("\n")
        in_block = skipping = False
        index = 0
        while index < len(lines):
            line = lines[index]
            indented = line.startswith("    ") and bool(line.strip())
            starts = indented and not in_block and (index == 0 or not lines[index - 1].strip())
            in_block = indented and (in_block or starts)
            if starts:
                skipping = line.strip().startswith(NOT_COMMANDS)
            if in_block and not skipping:
                command = line.strip()
                while command.endswith("\\"):
                    index += 1
                    command = command[:-1].rstrip() + " " + lines[index].strip()
                if not command.startswith("#"):
                    command = re.sub(r"\s+#\s.*$", "", command)  # a trailing comment
                command = re.sub(r"\s+", " ", command)
                if command.startswith("[") and found:  # a synopsis wrapped over lines
                    found[-1] = (page, f"{found[-1][1]} {command}")
                else:
                    found.append((page, command))
            index += 1
    return found


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    """The tracked files of this working tree in a temporary folder."""
    clone = tmp_path_factory.mktemp("clone")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    return clone


def test_every_command_is_found_and_every_table_entry_is_in_the_text():
    commands = {command for _, command in documented_commands()}
    assert "bin/reproduce mnist_lstm" in commands and "source .venv/bin/activate" in commands
    stale = (set(SMALLER) | set(ELSEWHERE)) - commands
    assert not stale, f"table entries no longer in README.md or docs/: {sorted(stale)}"
    assert not set(SMALLER) & set(ELSEWHERE)


#: Runs ``python SCRIPT ARGS`` and ``python -m MODULE ARGS`` commands one after another in one
#: interpreter (torch is imported once instead of once per command: about 20 commands), from the
#: clone's folder and with the clone's code first on sys.path. Prints one JSON line per command.
DRIVER = r"""
import contextlib, io, json, runpy, sys
commands = json.loads(sys.argv[1])
sys.path.insert(0, ".")
for argv in commands:
    out = io.StringIO()
    code = 0
    sys.argv = list(argv)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            if argv[0] == "-m":
                sys.argv = [argv[1], *argv[2:]]
                runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    print(json.dumps({"argv": argv, "code": code, "output": out.getvalue()[-3000:]}), flush=True)
"""


def test_every_documented_command_exits_0_on_a_fresh_clone(fresh_clone):
    """The commands in the order of the text (the advise record is written by the command before
    the one that reads it): Python ones in one interpreter (DRIVER), the others with bash."""
    import json
    import shlex

    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
        "VIRTUAL_ENV": sys.prefix,
    }
    environment.pop("PYTHONPATH", None)
    python_commands, shell_commands = [], []
    for page, command in documented_commands():
        if command in ELSEWHERE:
            continue
        if command == "source .venv/bin/activate":
            command = f"source {Path(sys.prefix) / 'bin' / 'activate'}"
        command = SMALLER.get(command, command)
        words = shlex.split(command)
        if words[0] == "python" and not any(char in command for char in "$|&;<>"):
            python_commands.append((page, command, words[1:]))
        else:
            shell_commands.append((page, command))
    for page, command in shell_commands:
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=fresh_clone,
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, (
            f"{page}: `{command}` exited {result.returncode}:\n"
            f"{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
        )
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps([argv for *_, argv in python_commands])],
        cwd=fresh_clone,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(outcomes) == len(python_commands), result.stderr[-3000:]
    for (page, command, _), outcome in zip(python_commands, outcomes, strict=True):
        assert outcome["code"] == 0, (
            f"{page}: `{command}` exited {outcome['code']}:\n{outcome['output']}"
        )
    # the main job (smoke here) wrote its own folder, never results/
    assert (fresh_clone / "runs" / "mnist_lstm" / "smoke" / "summary.json").is_file()
    assert not (fresh_clone / "results" / "mnist_lstm" / "smoke").exists()
    advise_record = fresh_clone / "runs" / "mnist_lstm" / "advise" / "runs" / "none_b128_s0.json"
    assert advise_record.is_file()
    assert len(python_commands) + len(shell_commands) >= 20
