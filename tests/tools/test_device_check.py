"""tools/device_check.py, the script for a lent GPU machine, run here as CI runs it: ``--smoke``, on
the CPU with tiny sizes and TensorFlow blocked in its processes (the GPU machine has none), so
that it cannot rot between the sessions that have a GPU (issue 23)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import HERE, REPO_ENV, needs_timm

SCRIPT = os.path.join(os.path.dirname(HERE), "tools", "device_check.py")


@pytest.mark.slow
@needs_timm
@pytest.mark.xdist_group("device_check")
def test_device_check_smoke_run_writes_its_report(tmp_path):
    result = subprocess.run([sys.executable, SCRIPT, "--smoke", "--out", str(tmp_path)], capture_output=True,
                            text=True, timeout=1200, env=REPO_ENV)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "device_check.json").read_text())
    table = (tmp_path / "device_check.md").read_text()
    assert report["smoke"] is True and report["versions"]["keras"] and report["machine"]["device"] == "cpu"
    # logits on JAX and PyTorch (here on the CPU) against JAX's CPU reference: NFNet-F0 in a smoke run
    rows = {(part["backend"], row["model"]): row for part in report["logits"] for row in part["rows"]}
    assert set(rows) == {("jax", "NFNetF0"), ("torch", "NFNetF0")}
    assert max(row["full_precision"] for row in rows.values()) < 1e-4
    # training: NFNet-F0 on both backends (a smoke run's plan), finite losses, a throughput; the GPU
    # run's plan also trains NF-RegNet-B0 and its timm peer, through the same code
    trained = {(part["backend"], part["model"]): part for part in report["train"]}
    assert set(trained) == {("jax", "NFNetF0-bfloat16"), ("torch", "NFNetF0-bfloat16")}
    sys.path.insert(0, os.path.dirname(SCRIPT))
    import device_check

    # a smoke run's models have one block per stage (every layer type of the variant); the GPU run's are whole
    assert report["sizes"]["depths"] == [1, 1, 1, 1] and device_check.sizes(smoke=False)["depths"] is None
    gpu_plan = device_check.run_plan(smoke=False)  # every family in bfloat16 and float16, on both backends
    assert {(b, m) for part, b, m in gpu_plan if part == "train"} == {
        (b, f"{m}-{p}") for b in ("jax", "torch") for m in ("NFNetF0", "NFRegNetB0", "NFResNet26", "ECANFNetL0")
        for p in ("bfloat16", "float16")}
    assert {m for part, _, m in gpu_plan if part == "timm"} == set(device_check.TRAINED.values())
    assert ("train", "tensorflow", "NFNetF0-float16") in device_check.run_plan(False, ("jax", "torch", "tensorflow"))
    assert all(part["losses_finite"] and part["images_per_s"] > 0 for part in trained.values())
    # timm's peer: AMP bf16 and channels_last ran; torch.compile is skipped in a smoke run, and says so
    for part in report["timm"]:
        configs = {row["config"]: row for row in part["configs"]}
        assert configs["amp_bf16"]["images_per_s"] > 0 and configs["amp_bf16+channels_last"]["images_per_s"] > 0
        assert "smoke" in configs["amp_bf16+channels_last+compile"]["skipped"]
        assert part["best"]["bfloat16"] in configs
    assert "| NFNet" in table and "timm amp_bf16" in table and "x timm's best" in table
    # memory: ours and timm's NFNet-F0, with and without remat, each step ran (a smoke run does not search
    # for the largest batch; on a GPU the peak and the largest batch are measured for F0-F3)
    memory = {part["implementation"]: part for part in report["memory"]}
    assert set(memory) == {"keras", "timm"}
    for part in memory.values():
        assert [(row["model"], row["remat"]) for row in part["rows"]] == [("NFNetF0", False), ("NFNetF0", True)]
        assert all(row["largest_batch"] == 2 and "error" not in row for row in part["rows"])
    assert {m for part, _, m in gpu_plan if part == "memory"} == {"keras", "timm"}
    assert device_check.sizes(smoke=False)["memory_models"] == ("NFNetF0", "NFNetF1", "NFNetF2", "NFNetF3")
    assert "| memory, bf16 training step" in table
