"""Training faults on purpose: SIGKILL at three points, and a disk that fills up mid-run.

A killed run resumed with `--resume` must end with the adapter an uninterrupted run gives
(same per-step losses, same weights); a full disk must stop the run with a clear message,
keep the last complete checkpoint intact, and resume once space is back.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import SHOPTUNE_BIN, invoke_shoptune
from safetensors.torch import load_file

from shoptune.core.paths import CONFIGS_DIR, REPO_ROOT

TINY = CONFIGS_DIR / "tiny-qwen.yaml"
STEPS = 8
"""Steps of an SFT run here; a DPO or GRPO run takes `SHORT_STEPS` (a step costs 2-4 times as much)
and is killed half way."""
SHORT_STEPS = 4


def _train_args(out: Path, data: Path, *extra: str, steps: int = STEPS) -> list[str]:
    return [
        "train", str(TINY), "--out", str(out), "--data", str(data),
        "--set", "train.save_steps=2", "--set", f"train.max_steps={steps}", "--set", "train.eval_steps=null",
        *extra,
    ]  # fmt: skip


def _train_process(out: Path, data: Path, *extra: str, steps: int = STEPS) -> subprocess.Popen:
    return subprocess.Popen(
        [str(SHOPTUNE_BIN), *_train_args(out, data, *extra, steps=steps)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path) -> Path:
    """The uninterrupted run the interrupted ones must reproduce (trained in this process)."""
    out = tmp_path_factory.mktemp("straight") / "run"
    done = invoke_shoptune(*_train_args(out, tiny_data))
    assert done.returncode == 0, done.stderr
    return out


def _losses(run: Path) -> dict[int, float]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return {record["step"]: record["loss"] for record in map(json.loads, lines)}


def _assert_same_run(run: Path, reference: Path, steps: int = STEPS) -> None:
    expected, got = _losses(reference), _losses(run)
    assert sorted(got) == sorted(expected) == list(range(1, steps + 1))
    for step in expected:
        assert got[step] == pytest.approx(expected[step], abs=1e-4), step
    a = load_file(reference / "final/adapter/adapter_model.safetensors")
    b = load_file(run / "final/adapter/adapter_model.safetensors")
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5


def _wait_until(condition, process: subprocess.Popen, what: str, poll_s: float = 0.01, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {process.stderr.read()[-2000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll_s)


def _kill(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def test_three_kills_then_resume_give_the_uninterrupted_adapter(
    tmp_path: Path, tiny_data: Path, straight_run: Path, ledger
) -> None:
    run = tmp_path / "killed"
    checkpoints = run / "checkpoints"

    # 1. After the first optimizer step, before any checkpoint exists.
    process = _train_process(run, tiny_data)
    _wait_until(
        lambda: (run / "metrics.jsonl").is_file() and (run / "metrics.jsonl").stat().st_size > 0, process, "step 1"
    )
    _kill(process)
    assert not list(checkpoints.glob("step-*"))

    # 2. While checkpoint 4 is being written (its staging folder exists, not yet published).
    process = _train_process(run, tiny_data, "--resume")
    _wait_until(lambda: (checkpoints / "checkpoint-4").exists(), process, "the step-4 save", poll_s=0.001)
    _kill(process)
    assert (checkpoints / "step-000002").is_dir()
    caught_mid_save = (checkpoints / "checkpoint-4").exists()

    # 3. Between checkpoints, after step 6 was published.
    process = _train_process(run, tiny_data, "--resume")
    _wait_until(lambda: (checkpoints / "step-000006").is_dir(), process, "checkpoint 6")
    _kill(process)

    done = invoke_shoptune(*_train_args(run, tiny_data, "--resume"))  # the resume that finishes: in this process
    assert done.returncode == 0, done.stderr
    assert "resuming from" in done.stderr and "step-000006" in done.stderr
    assert not list(checkpoints.glob("checkpoint-*"))
    _assert_same_run(run, straight_run)
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest["sessions"]) == 4 and manifest["sessions"][-1]["resumed_from"].endswith("step-000006")
    ledger(
        "training faults",
        "SIGKILL after step 1, during the step-4 checkpoint save"
        + ("" if caught_mid_save else " (landed just after it)")
        + ", after step 6; then --resume",
        3,
        "same per-step losses (1e-4) and adapter (max diff < 1e-5) as an uninterrupted run",
    )


def _straight_and_killed_half_way(tmp_path: Path, data: Path, *extra: str) -> tuple[Path, Path]:
    """(an uninterrupted run of `SHORT_STEPS`, a run of the same config SIGKILLed once its checkpoint
    half way is published)."""
    straight = tmp_path / "straight"
    done = invoke_shoptune(*_train_args(straight, data, *extra, steps=SHORT_STEPS))
    assert done.returncode == 0, done.stderr
    run = tmp_path / "killed"
    process = _train_process(run, data, *extra, steps=SHORT_STEPS)
    half_way = run / "checkpoints" / f"step-{SHORT_STEPS // 2:06d}"
    _wait_until(half_way.is_dir, process, f"checkpoint {SHORT_STEPS // 2}")
    _kill(process)
    return straight, run


def test_a_killed_dpo_run_resumes_to_the_uninterrupted_adapter(tmp_path: Path, tiny_data: Path, ledger) -> None:
    """DPO keeps its rule-made pairs in the run folder: a resume trains on the very same pairs."""
    dpo = ("--set", "train.method=dpo")
    straight, run = _straight_and_killed_half_way(tmp_path, tiny_data, *dpo)
    pairs = (run / "pairs" / "train.jsonl").read_bytes()
    done = invoke_shoptune(*_train_args(run, tiny_data, *dpo, "--resume", steps=SHORT_STEPS))
    assert done.returncode == 0, done.stderr
    assert "resuming from" in done.stderr and "made preference pairs" not in done.stderr
    assert (run / "pairs" / "train.jsonl").read_bytes() == pairs == (straight / "pairs" / "train.jsonl").read_bytes()
    _assert_same_run(run, straight, SHORT_STEPS)
    ledger(
        "training faults",
        f"SIGKILL of a DPO run after checkpoint {SHORT_STEPS // 2} of {SHORT_STEPS}; then --resume",
        1,
        "same per-step losses (1e-4) and adapter (max diff < 1e-5) as an uninterrupted DPO run",
    )


def _rewards(run: Path) -> dict[int, float]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return {record["step"]: record["reward"] for record in map(json.loads, lines)}


def test_a_killed_grpo_run_resumes_to_the_uninterrupted_adapter(tmp_path: Path, tiny_data: Path, ledger) -> None:
    """GRPO samples its answers: a resume restores the random state with the checkpoint, so it
    samples the very answers the uninterrupted run sampled (same rewards step by step)."""
    grpo = ("--set", "train.method=grpo", "--set", "train.grpo.max_completion_length=24")
    straight, run = _straight_and_killed_half_way(tmp_path, tiny_data, *grpo)
    done = invoke_shoptune(*_train_args(run, tiny_data, *grpo, "--resume", steps=SHORT_STEPS))
    assert done.returncode == 0, done.stderr
    assert "resuming from" in done.stderr
    assert _rewards(run) == pytest.approx(_rewards(straight), abs=1e-6)
    assert len(set(_rewards(straight).values())) > 1  # the answers differ from step to step: a real check
    _assert_same_run(run, straight, SHORT_STEPS)
    ledger(
        "training faults",
        f"SIGKILL of a GRPO run after checkpoint {SHORT_STEPS // 2} of {SHORT_STEPS}; then --resume",
        1,
        "same per-step rewards (sampled answers), losses (1e-4) and adapter (max diff < 1e-5) "
        "as an uninterrupted GRPO run",
    )


def _mount_small_disk(folder: Path) -> None:
    folder.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=128m", "tmpfs", str(folder)]
    if os.geteuid() != 0:
        command = ["sudo", "-n", *command]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"this test mounts a 128 MB tmpfs (needs root or passwordless sudo): {done.stderr}"


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(chunk)
                handle.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_full_disk_stops_the_run_clearly_and_keeps_the_last_checkpoint(
    tmp_path: Path, tiny_data: Path, straight_run: Path, ledger
) -> None:
    disk = tmp_path / "disk"
    _mount_small_disk(disk)
    try:
        run = disk / "run"
        process = _train_process(run, tiny_data)
        _wait_until(lambda: (run / "checkpoints" / "step-000002").is_dir(), process, "checkpoint 2")
        before = _digest(run / "checkpoints" / "step-000002")
        filler = _fill(disk)
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 3, stderr
        assert "Traceback" not in stderr
        assert "is full (No space left on device" in stderr and "--resume" in stderr
        assert f"The last complete checkpoint is {run / 'checkpoints' / 'step-000002'}, intact" in stderr
        assert _digest(run / "checkpoints" / "step-000002") == before
        assert not list((run / "checkpoints").glob("checkpoint-*")) and not (run / "final").exists()

        filler.unlink()
        done = invoke_shoptune(*_train_args(run, tiny_data, "--resume"))
        assert done.returncode == 0, done.stderr
        _assert_same_run(run, straight_run)
    finally:
        shutil.rmtree(disk / "run", ignore_errors=True)
        subprocess.run(["umount", str(disk)] if os.geteuid() == 0 else ["sudo", "-n", "umount", str(disk)], check=False)
    ledger(
        "training faults",
        "disk fills up (a 128 MB tmpfs, filled) after checkpoint 2",
        1,
        "exit 3 naming the full disk and the intact checkpoint 2; freed and resumed: same adapter",
    )
