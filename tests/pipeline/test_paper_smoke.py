"""``--stage all --local --preset paper`` end to end at the paper's sizes, on a 3-video world.

Every stage runs at ``paper``'s sizes: 44.1 kHz clips, 1025 x 44 spectrograms, the official estimator,
ResNet-50 TSM at 224 px over 22 frames, the official 35 M U-Net (138 GFLOP per forward), the ResNet-50
metric classifier, the paper-sized comparison systems (ConvNet-based, Transformer-based, Owens et al.,
Video + MFCC, the nu -> mu regressor). Only the amount of work is cut: one batch of 2 clips per epoch and
one epoch per stage, one validation batch, 2 DDIM steps, one held-out timestep, few bootstrap resamples.
Three videos, not two: one test video and two training videos, one of which becomes the validation split,
so each stage's validation code also runs at the paper's sizes.

It takes about 8 minutes on a 2-core CPU (493 s measured while two other jobs shared the cores; docs/results.md,
"The paper smoke test"): it is marked ``slow`` and runs only with ``PHYSDIFF_PAPER_SMOKE=1`` (``.ci/run`` does
not set it, to keep CI's budget), or on a GPU machine::

    PHYSDIFF_PAPER_SMOKE=1 python -m pytest tests/pipeline/test_paper_smoke.py -s
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("PHYSDIFF_PAPER_SMOKE") != "1",
                       reason="the paper-size smoke test takes ~8 min on 2 CPU cores: set PHYSDIFF_PAPER_SMOKE=1"),
]
SMALL = [  # the amount of work, not the sizes
    "world.videos=3", "world.hits_per_video=5", "train.epochs=1", "train.batches_per_epoch=1", "loader.batch_size=2",
    "classifier.epochs=1", "classifier.batch_size=2", "train.eval_batches=1", "diffusion.eval_t_grid=1",
    "diffusion.eval_sample_steps=2", "sampling.sampler=ddim", "sampling.steps=2", "sampling.eta=0",
    "eval.ddim_steps=2", "eval.table3_ddpm=false", "eval.bootstrap=20", "eval.bootstrap_set=5",
    "eval.kid_subsets=2", "loader.num_workers=0", "train.progress=false", "tracking.enabled=false",
]


@pytest.mark.timeout(3600)
def test_paper_preset_end_to_end(tmp_path: Path) -> None:
    from physdiff.config import resolve_config
    from physdiff.eval.config import EVAL_VARIANTS, FIG5B_ROWS, TABLE3_ROWS
    from physdiff.eval.report import read_report
    from physdiff.inference.load import load_diffusion
    from physdiff.launch.pipeline import pipeline_steps

    t0 = time.time()
    cmd = [sys.executable, str(REPO / "cluster" / "launch.py"), "--stage", "all", "--local", "--preset", "paper",
           "--data-root", str(tmp_path), *SMALL]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3500, cwd=REPO,
                       env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2")))
    seconds = time.time() - t0
    (tmp_path / "smoke.log").write_text(p.stdout + p.stderr)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    print(f"paper smoke test: {seconds:.0f} s; step times:\n" + "\n".join(l for l in p.stderr.splitlines() if l.startswith("[all]")))

    cfg = resolve_config("paper", [f"paths.data_root={tmp_path}", *SMALL])
    runs = {s.name: s.output(cfg) for s in pipeline_steps(cfg)}
    for name in ("convnet", "tts", "owens", "mu_regressor", "diffusion-video_mfcc", "diffusion-ours", "video", "classifier"):
        assert (runs[name] / "DONE.json").is_file(), name
    # the paper's sizes, read back from what ran
    shard = json.loads(next((tmp_path / "shards").glob("*/train/manifest.json")).read_text())
    assert shard["sample"]["sample_rate"] == 44100 and shard["sample"]["num_samples"] == 11025
    man = json.loads((runs["diffusion-ours"] / "export" / "manifest.json").read_text())
    assert man["spec_shape"] == [1025, 44] and man["timesteps"] == 1000
    unet = sum(p.numel() for p in load_diffusion(runs["diffusion-ours"]).model.unet.parameters())
    assert 36.5e6 < unet < 37.5e6, unet  # 37.1 M with the condition path (bench/diffusion.py: beside the official 35.3 M)
    video = json.loads((runs["video"] / "export" / "manifest.json").read_text())
    assert video["backbone"] == "resnet50" and video["feature_dim"] == 2048
    run_cfg = json.loads((runs["video"] / "config.json").read_text())
    assert run_cfg["video"]["frame_size"] == 224 and run_cfg["physics"]["estimator"] == "official"
    # every row of the paper's Tables 1 and 3 and Fig. 5b, scored
    rep = read_report(runs["evaluate"])
    assert [r["variant"] for r in rep.table1] == ["ground_truth", *EVAL_VARIANTS]
    assert [r["method"] for r in rep.table3][: len(TABLE3_ROWS)] == list(TABLE3_ROWS)
    assert [r["variant"] for r in rep.fig5b] == list(FIG5B_ROWS)
