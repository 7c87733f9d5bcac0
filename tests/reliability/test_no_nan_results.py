"""No NaN is ever written as a result, and a re-run of generate leaves no stale clip.

* ``generate --guidance nan`` / ``--eta nan`` / ``--steps -5`` (and ``edit --steps -5``): one line naming the
  ``sampling`` setting, before any model loads, nothing written (also with a real run given);
* ``edit --edit modal_gain_db=1e6`` (10^50000 in float32: an all-NaN WAV before) and an out-of-range or
  ill-typed edit: one line naming the edit key, no WAV; a non-finite clip is refused by the writer itself;
* a diffusion model that produces NaN: generation refuses to write anything (``physdiff.inference.generate``);
* generate into the same ``--out`` with fewer onsets: the folder holds exactly what ``generation.json`` lists.

The trained runs are the stage tests' (``tests.stages.trained_runs``: every stage of ``debug``, one epoch of
two batches, on the session's debug world).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.reliability.conftest import REPO, env1
from tests.stages.trained_runs import config, train_upstream

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def runs(debug_data: dict) -> dict:
    return train_upstream(debug_data, ("ours",))


def _world_video(debug_data: dict) -> tuple[Path, list[float]]:
    from physdiff.inference.media import read_onsets

    world = Path(debug_data["world"])
    times = sorted(world.glob("*_times.txt"))[0]
    return world / times.name.replace("_times.txt", "_denoised.mp4"), read_onsets(times)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env1(), capture_output=True, text=True, timeout=400)


def _one_line(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-3000:]
    lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
    assert lines[-1].startswith("error: ") and sum(l.startswith("error: ") for l in lines) == 1, p.stderr[-3000:]
    return lines[-1]


@pytest.mark.parametrize("flags,setting", [(["--guidance", "nan"], "sampling.guidance_scale"),
                                           (["--eta", "nan"], "sampling.eta"),
                                           (["--steps", "-5"], "sampling.steps")])
def test_generate_refuses_nonfinite_sampling_flags_with_a_real_run(debug_data: dict, runs: dict, tmp_path: Path,
                                                                   flags: list[str], setting: str) -> None:
    video, onsets = _world_video(debug_data)
    out = tmp_path / "gen"
    p = _cli("cluster/generate.py", "--video", str(video), "--onsets", ",".join(f"{t:.3f}" for t in onsets[:2]),
             "--out", str(out), "--run-from", str(runs["diffusion"]["ours"]), *flags)
    assert setting in _one_line(p)
    assert not out.exists()


def test_edit_refuses_a_gain_that_would_write_nan(debug_data: dict, runs: dict, tmp_path: Path) -> None:
    from physdiff.data.reader import make_loader

    key = next(iter(make_loader(debug_data["shards"], "train", batch_size=1, mode="eval")))["key"][0]
    base = ["cluster/edit.py", "--clip", key, "--run-from", str(runs["diffusion"]["ours"]), "--no-diffusion"]
    for edit, named in (("modal_gain_db=1e6", "modal_gain_db"), ("residual_gain_db=-1e6", "residual_gain_db"),
                        ("freq_scale=1e300", "freq_scale"), ("decay_scale=nan", "decay_scale")):
        out = tmp_path / edit.split("=")[0]
        line = _one_line(_cli(*base, "--edit", edit, "--out", str(out)))
        assert named in line, line
        assert not out.exists() or not list(out.glob("*.wav")), sorted(out.iterdir())
    # The edit inside the range works and writes finite clips.
    import soundfile as sf

    out = tmp_path / "ok"
    p = _cli(*base, "--edit", "modal_gain_db=6", "--out", str(out))
    assert p.returncode == 0, p.stderr[-3000:]
    for wav in ("direct_before.wav", "direct_after.wav"):
        x, _ = sf.read(out / wav)
        assert x.size and torch.isfinite(torch.as_tensor(x)).all()


def test_the_edit_writer_refuses_a_nonfinite_clip(tmp_path: Path) -> None:
    from physdiff.errors import PhysdiffError
    from physdiff.eval.editing import write_edit_outputs

    good = torch.sin(torch.linspace(0, 100, 4000))[None]  # (1, T)
    bad = good.clone()
    bad[0, 17] = float("nan")
    with pytest.raises(PhysdiffError, match="after clip has 1 non-finite samples"):
        write_edit_outputs(tmp_path / "e", "direct", good, bad, 16000, 512, 128)
    assert not (tmp_path / "e").exists()


def test_generation_from_a_nan_model_writes_nothing(debug_data: dict, runs: dict, tmp_path: Path) -> None:
    from physdiff.errors import DataError
    from physdiff.inference.generate import generate_video
    from physdiff.inference.synthesizer import Synthesizer

    synth = Synthesizer.from_run(runs["diffusion"]["ours"])
    with torch.no_grad():
        for p in synth.diffusion.model.parameters():
            p.fill_(float("nan"))
    opts = dataclasses.replace(config(debug_data).sampling, sampler="ddim", steps=2, eta=0.0)
    video, onsets = _world_video(debug_data)
    with pytest.raises(DataError, match="non-finite audio; nothing was written"):
        generate_video(synth, video, onsets[:2], tmp_path / "gen", opts, progress=False)
    assert not (tmp_path / "gen").exists()


def test_generate_again_with_fewer_onsets_leaves_no_stale_clip(debug_data: dict, runs: dict, tmp_path: Path) -> None:
    from physdiff.inference.generate import generate_video
    from physdiff.inference.synthesizer import Synthesizer

    synth = Synthesizer.from_run(runs["diffusion"]["ours"])
    opts = dataclasses.replace(config(debug_data).sampling, sampler="ddim", steps=2, eta=0.0)
    video, onsets = _world_video(debug_data)
    assert len(onsets) >= 3
    out = tmp_path / "gen"
    (out).mkdir()
    (out / "my-notes.txt").write_text("not generate's\n")  # a file generate never wrote survives both runs
    first = generate_video(synth, video, onsets[:3], out, opts, progress=False)
    assert len(first["clips"]) == 3
    second = generate_video(synth, video, onsets[:1], out, opts, progress=False)
    listed = {c["wav"] for c in second["clips"]} | {second[k] for k in ("soundtrack", "mp4", "figure")}
    present = {p.name for p in out.iterdir()}
    assert present == listed | {"generation.json", "my-notes.txt"}, present ^ (listed | {"generation.json", "my-notes.txt"})
    assert json.loads((out / "generation.json").read_text())["clips"] == second["clips"]


def test_truncated_weights_are_one_line_naming_the_file(debug_data: dict, runs: dict, tmp_path: Path) -> None:
    """safetensors' own SafetensorError (a truncated ``model.safetensors``) reaches the user as one line naming it."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(debug_data["root"], data, symlinks=True)
    run = data / "runs" / Path(runs["diffusion"]["ours"]).name
    weights = run / "export" / "model.safetensors"
    raw = weights.read_bytes()
    weights.write_bytes(raw[: len(raw) // 3])
    video, onsets = _world_video(debug_data)
    out = tmp_path / "gen"
    line = _one_line(_cli("cluster/generate.py", "--video", str(video), "--onsets", f"{onsets[0]:.3f}", "--out", str(out),
                          "--run-from", str(run)))
    assert str(weights) in line, line
    assert not out.exists()
