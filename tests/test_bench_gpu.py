"""bench/gpu.py keeps working until a GPU arrives: its whole table at ``debug`` size on the CPU, as CI runs it.

The smoke run is the real script as a subprocess (``--preset debug --device cpu --quick``; dynamo with the
``eager`` backend for the compile rows, so no C++ toolchain is needed; ``diffusion.timesteps=10`` so DDPM-T is
10 U-Net calls). About 30 CPU-seconds; on the shared 2-core box its wall time follows the load.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu.py"

# (section, the start of the measurement's name): every row the paper run reports
EXPECTED = [
    ("device", "bf16 matmul rate"),
    ("diffusion", "model FLOPs per training sample"), ("prior", "model FLOPs"), ("video", "model FLOPs"),
    ("diffusion", "train samples/s, fp32, eager"), ("diffusion", "train samples/s, bf16, eager, batch"),
    ("diffusion", "train samples/s, bf16, eager, deterministic off"),
    ("diffusion", "peak memory, fp32, eager"), ("diffusion", "peak memory, bf16, eager"),
    ("diffusion", "largest batch that fits, fp32"), ("diffusion", "largest batch that fits, bf16"),
    ("diffusion", "train samples/s, fp32, torch.compile"), ("diffusion", "train samples/s, bf16, torch.compile"),
    ("prior", "train samples/s, fp32"), ("prior", "train samples/s, bf16"), ("prior", "peak memory, fp32"),
    ("video", "train samples/s, fp32"), ("video", "train samples/s, bf16"), ("video", "peak memory, bf16"),
    ("sampling", "DDIM-10 s/clip, batch 1"), ("sampling", "DDIM-10 s/clip, batch 2"),
    ("sampling", "DDPM-10 s/clip, batch 1"), ("sampling", "DDPM-10 s/clip, batch 2"),
    ("sampling", "Griffin-Lim s/clip"), ("sampling", "real-time factor, DDIM-10, batch 2"),
    ("sampling", "real-time factor, DDPM-10, batch 1"),
    ("loader", "clips/s, audio + modes"), ("loader", "clips/s, + frames decoded in workers"),
    ("loader", "clips/s, + frames decoded on the device"),
]


def _load():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is made
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.timeout(600)
def test_bench_gpu_debug_cpu_table_complete(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    p = subprocess.run([sys.executable, str(SCRIPT), "--preset", "debug", "--device", "cpu", "--quick",
                        "--compile-backend", "eager", "--workers", "2", "--budget", "100000", "--json", str(out),
                        "diffusion.timesteps=10"],
                       capture_output=True, text=True, timeout=580, cwd=REPO,
                       env=dict(os.environ, OMP_NUM_THREADS="2", PYTHONPATH=str(REPO)))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["preset"] == "debug" and res["device"].startswith("CPU")
    rows = res["rows"]
    for section, name in EXPECTED:
        hits = [r for r in rows if r["section"] == section and r["name"].startswith(name)]
        assert hits, f"no row {section}: {name}* in {[r['name'] for r in rows]}"
        for r in hits:
            assert r["status"] == "ok" and r["value"] is not None and math.isfinite(r["value"]) and r["value"] > 0, r
    assert not [r for r in rows if r["status"] != "ok"]
    # the printed table is the JSON's rows, one line each
    table = p.stdout.split("| section | measurement | value | unit | note |", 1)[1]
    assert len([l for l in table.splitlines() if l.startswith("| ")]) == len(rows)
    # derived and measured are told apart; the search hit --max-batch (CPU: no OOM), and says so
    by = {r["name"]: r for r in rows}
    assert by["DDPM-10 s/clip, batch 2"]["note"].startswith("derived")
    assert by["largest batch that fits, fp32"]["value"] == 4 and "capped" in by["largest batch that fits, fp32"]["note"]
    rtf = by["real-time factor, DDIM-10, batch 2 + Griffin-Lim"]["value"]
    parts = by["DDIM-10 s/clip, batch 2"]["value"] + by["Griffin-Lim s/clip, batch 2"]["value"]
    assert rtf == pytest.approx(parts / 0.25)


def test_largest_batch_search_finds_the_limit() -> None:
    """Doubling until out of memory, then bisection to within 1/8 of the largest batch that runs."""
    gpu = _load()
    tried = []

    def fits_below(limit: int):
        def attempt(b: int) -> None:
            tried.append(b)
            if b > limit:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return attempt

    for limit in (16, 37, 100, 1000):
        tried.clear()
        best, capped = gpu.largest_batch(fits_below(limit), 16, 4096)
        assert not capped and best <= limit and limit - best <= max(1, best // 8), (limit, best, tried)
    assert gpu.largest_batch(fits_below(10), 16, 4096) == (0, False)  # not even the first batch
    assert gpu.largest_batch(fits_below(10**6), 16, 64) == (64, True)  # the cap stopped it
    with pytest.raises(ValueError):  # anything but an OOM is a real failure
        gpu.largest_batch(lambda b: (_ for _ in ()).throw(ValueError("bad shape")), 16, 64)


def test_budget_skips_rows_it_cannot_fit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """With no time left every measurement is a row marked skipped (the table stays complete)."""
    gpu = _load()
    out = tmp_path / "gpu.json"
    assert gpu.main(["--preset", "debug", "--device", "cpu", "--quick", "--budget", "0", "--json", str(out),
                     "diffusion.timesteps=10"]) == 0
    rows = json.loads(out.read_text())["rows"]
    skipped = [r for r in rows if r["status"] == "skipped: budget"]
    assert {r["section"] for r in skipped} == {"diffusion", "prior", "video", "sampling", "loader"}
    assert all(r["value"] is None for r in skipped)
    assert "| skipped: budget |" in capsys.readouterr().out
