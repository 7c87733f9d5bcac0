"""A recording sampled below ``audio.sample_rate`` is a warning plus a recorded reason, and an error with --strict.

An 8 kHz wav built into 16 kHz clips (the ``debug`` preset) is upsampled, so its clips are well formed but
hold nothing above 4 kHz: the real shard build must say so on stderr, keep the clips, and list the
recording in the split manifest's ``band_limited`` (and the summary); ``--strict`` refuses the build in one
line naming the wav. A 48 kHz recording (above the target) is not flagged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.conftest import REPO, env1
from tests.reliability.test_bad_inputs import _video, _wav

pytestmark = pytest.mark.timeout(400)
VID = "2015-01-01-00-00-01"


@pytest.fixture(scope="module")
def narrow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("band") / "src"
    root.mkdir()
    _video(root, VID)
    _wav(root / f"{VID}_denoised.wav", 1.6, [0.4, 1.0], rate=8000)  # replace the 96 kHz recording
    _video(root, "2015-01-01-00-00-02", wav="stereo48k")
    return root


def _build(src: Path, out: Path, *flags: str) -> subprocess.CompletedProcess:
    # shards.val_fraction=0: both training videos stay in train (the validation split would take one of two)
    return subprocess.run([sys.executable, "shards/build.py", "--source", str(src), "--out", str(out), "--preset", "debug",
                           "shards.val_fraction=0", *flags], cwd=REPO, env=env1(), capture_output=True, text=True, timeout=300)


def test_band_limited_recording_is_kept_with_a_warning_and_a_recorded_reason(narrow: Path, tmp_path: Path) -> None:
    p = _build(narrow, tmp_path / "shards")
    assert p.returncode == 0, p.stderr[-3000:]
    wav = narrow / f"{VID}_denoised.wav"
    warned = [l for l in p.stderr.splitlines() if "band-limited recording" in l]
    assert warned and str(wav) in warned[0] and "8000 Hz is below audio.sample_rate 16000 Hz" in warned[0], p.stderr
    man = json.loads((tmp_path / "shards" / "train" / "manifest.json").read_text())
    assert man["written"] == 4  # both videos' hits are kept
    (entry,) = man["band_limited"]
    assert entry["file"] == str(wav) and entry["sample_rate"] == 8000 and entry["target_rate"] == 16000
    assert entry["clips"] == 2 and "nothing above 4000 Hz" in entry["reason"]
    summary = json.loads((tmp_path / "shards" / "summary.json").read_text())
    assert [n["file"] for n in summary["band_limited"]] == [str(wav)]
    assert "warning:" in p.stdout and str(wav) in p.stdout  # the printed summary repeats it

    # What the warning is about: the clip cut from it has no energy above 4 kHz.
    from physdiff.data.reader import make_loader

    for b in make_loader(tmp_path / "shards", "train", batch_size=8, mode="eval"):
        for key, audio in zip(b["key"], b["audio"]):
            spec = np.abs(np.fft.rfft(np.asarray(audio, dtype=np.float64)))  # 16 kHz clip: bins up to 8 kHz
            hi = spec[len(spec) // 2 + len(spec) // 20 :]  # above ~4.4 kHz
            share = float((hi**2).sum() / (spec**2).sum())
            assert (share < 1e-4) == key.startswith(VID), (key, share)


def test_band_limited_recording_is_an_error_with_strict(narrow: Path, tmp_path: Path) -> None:
    p = _build(narrow, tmp_path / "shards", "--strict")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-3000:]
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("error: band-limited recording") and f"{VID}_denoised.wav" in line, line
