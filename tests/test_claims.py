"""Claims: one worker per run, stale claims (no heartbeat, a dead process) broken by
exactly one of the workers that race for them, and a lost claim noticed by its old owner."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reproduce.harness.cli.run import main
from reproduce.harness.sweep.claims import Claim, owner_info, process_gone


def _age(path: Path, seconds: float) -> None:
    """Make ``path``'s heartbeat ``seconds`` old."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_claim_is_exclusive_and_released(tmp_path):
    first, second = Claim(tmp_path, "date_b32_s0"), Claim(tmp_path, "date_b32_s0")
    assert first.acquire()
    assert not second.acquire()
    assert second.holder.owner["pid"] == os.getpid()
    assert f"{socket.gethostname()} pid {os.getpid()}" in second.holder.describe()
    assert Claim(tmp_path, "date_b128_s0").acquire(), "another run's claim is independent"
    first.release()
    assert not first.path(0).exists()
    assert second.acquire(), "a released claim is free"
    second.release()


def test_the_owner_refreshes_the_heartbeat(tmp_path):
    claim = Claim(tmp_path, "run", heartbeat_seconds=0.05)
    assert claim.acquire()
    _age(claim.path(0), 100)
    deadline = time.monotonic() + 10
    while time.time() - claim.path(0).stat().st_mtime > 50:
        assert time.monotonic() < deadline, "the heartbeat thread never touched the claim"
        time.sleep(0.02)
    claim.release()


def test_a_claim_without_heartbeat_is_stale_and_broken_by_a_new_generation(tmp_path):
    owner = Claim(tmp_path, "run", heartbeat_seconds=3600, stale_seconds=60)
    assert owner.acquire()
    other = Claim(tmp_path, "run", stale_seconds=60)
    _age(owner.path(0), 30)
    assert not other.acquire(), "30 s without a heartbeat is not stale at 60 s"
    _age(owner.path(0), 120)
    assert other.acquire()
    assert other.generation == 1 and "no heartbeat for 12" in other.broke
    assert not owner.check() and owner.lost, "the old owner learns that its claim was taken"
    owner.release()
    assert other.path(1).exists(), "the old owner never removes the claim that replaced its own"
    other.release()
    assert Claim(tmp_path, "run").generations() == []


def test_a_fresh_claim_on_another_host_is_live_even_if_its_pid_is_free(tmp_path):
    info = {**owner_info(), "host": "another-host", "pid": 2**22 + 17}
    (tmp_path / "run.0.claim").write_text(json.dumps(info))
    assert not process_gone(info)
    assert not Claim(tmp_path, "run").acquire()
    _age(tmp_path / "run.0.claim", 10_000)
    assert Claim(tmp_path, "run").acquire(), "its heartbeat decides"


def test_a_half_written_claim_is_live_until_its_heartbeat_is_old(tmp_path):
    (tmp_path / "run.0.claim").write_text("")  # a writer between create and write
    assert not Claim(tmp_path, "run").acquire()
    _age(tmp_path / "run.0.claim", 10_000)
    assert Claim(tmp_path, "run").acquire()


HOLD = """
import sys, time
from reproduce.harness.sweep.claims import Claim
claim = Claim(sys.argv[1], "run", heartbeat_seconds=3600)
assert claim.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_a_claim_of_a_killed_process_on_this_host_is_stale_at_once(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "held"
        assert not Claim(tmp_path, "run").acquire(), "its owner is alive"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    claim = Claim(tmp_path, "run")  # the heartbeat is fresh: only the pid says it is stale
    assert claim.acquire()
    assert "a process that is gone" in claim.broke and str(process.pid) in claim.broke
    claim.release()


def test_a_reused_pid_does_not_keep_a_claim_alive(tmp_path):
    info = {**owner_info(), "process_start": owner_info()["process_start"] - 1}
    assert process_gone(info), "same pid, started at another time: another process"
    assert not process_gone(owner_info())


def _race(folder: str, start, results) -> None:
    start.wait()
    claim = Claim(Path(folder), "run", stale_seconds=60)
    won = claim.acquire()
    results.put((os.getpid(), won, claim.generation))
    if won:
        time.sleep(0.5)  # hold it while the losers look; a late breaker must see it live
        claim.release()


@pytest.mark.parametrize("stale", [False, True], ids=["free", "stale"])
def test_of_workers_racing_for_a_claim_exactly_one_wins(tmp_path, stale):
    """Processes started together race for a free claim, or to break the same stale one: each
    round exactly one wins (O_EXCL on the next generation)."""
    context = multiprocessing.get_context("fork")
    for round_number in range(4):
        folder = tmp_path / f"round{round_number}"
        folder.mkdir()
        if stale:
            (folder / "run.0.claim").write_text(json.dumps({"host": "gone", "pid": 1}))
            _age(folder / "run.0.claim", 1000)
        start, results = context.Barrier(4), context.Queue()
        workers = [
            context.Process(target=_race, args=(str(folder), start, results)) for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(timeout=60)
        winners = [outcome for outcome in outcomes if outcome[1]]
        assert len(winners) == 1, outcomes
        assert winners[0][2] == (1 if stale else 0)


def test_a_claim_never_exists_without_its_owner(tmp_path, monkeypatch):
    """The claim appears by a hard link of a complete file: at the moment the name exists, it
    already names its owner (a worker killed while claiming leaves no empty claim that would
    block the run until the heartbeat times out). No temporary is left behind."""
    seen = []
    real_link = os.link

    def link(source, destination):
        seen.append(json.loads(Path(source).read_text()))  # what the claim will hold, complete
        real_link(source, destination)

    monkeypatch.setattr(os, "link", link)
    claim = Claim(tmp_path, "date_b32_s0")
    assert claim.acquire()
    assert seen == [json.loads(claim.path(0).read_text())] and seen[0]["pid"] == os.getpid()
    assert oct(claim.path(0).stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["date_b32_s0.0.claim"]
    claim.release()


def test_a_link_reported_failed_after_it_succeeded_still_claims(tmp_path, monkeypatch):
    """NFS: a link whose reply was lost is retried by the client and reports EEXIST although
    it was made; the temporary's link count shows it was ours."""
    real_link = os.link

    def link_then_lose_the_reply(source, destination):
        real_link(source, destination)
        raise FileExistsError(destination)

    monkeypatch.setattr(os, "link", link_then_lose_the_reply)
    claim, other = Claim(tmp_path, "date_b32_s0"), Claim(tmp_path, "date_b32_s0")
    assert claim.acquire()
    assert not other.acquire()  # a real EEXIST: the name was someone else's
    claim.release()


def test_without_hard_links_a_claim_is_still_exclusive(tmp_path, monkeypatch):
    def no_links(source, destination):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    first, second = Claim(tmp_path, "date_b32_s0"), Claim(tmp_path, "date_b32_s0")
    assert first.acquire() and not second.acquire()
    assert json.loads(first.path(0).read_text())["pid"] == os.getpid()
    first.release()
    assert second.acquire()
    second.release()


def test_a_sweep_whose_only_run_another_worker_holds_writes_no_report(tmp_path, capsys):
    """Nothing recorded yet (the one run is claimed by a live worker on another host): the sweep
    says so, writes no report from zero records, and exits 0 without a traceback."""
    claims = tmp_path / "claims"
    claims.mkdir()
    owner = {"host": "another-host", "pid": 1, "pid_namespace": None}
    (claims / "none_b32_s0.0.claim").write_text(json.dumps(owner))
    argv = ["mnist_lstm", "--preset", "smoke", "--methods", "none", "--batch-sizes", "32"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "none b=32 seed=0: being trained by another-host pid 1, skipped" in out
    assert f"no run is recorded in {tmp_path} yet, so no report is written" in out
    assert f"no report in {tmp_path} yet" in out
    assert not (tmp_path / "runs").exists() and not (tmp_path / "tables.md").exists()
