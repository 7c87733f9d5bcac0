"""An independent check that a world's recordings carry material: log-mel statistics + logistic regression.

Nothing of the pipeline's models is used: the clips are cut from the world's own files exactly as the
shard builder cuts them (the paper subset: hit + static + 10 materials; [onset, onset + 0.25 s) at
``sample_rate``), each becomes the mean and standard deviation over time of its log-mel bands
(``n_mels`` each), and a multinomial logistic regression with an L2 penalty (full-batch L-BFGS on
standardised features, numpy/torch: scikit-learn is not installed) is trained on one world's
training clips and scored on a world's test clips. A world whose test recordings this probe cannot
tell apart gives any metric classifier a low ceiling (issue 15: the v1 world sat at chance).

    from physdiff.world.probe import run_probe
    r = run_probe("data/world/tiny", sample_rate=16000)                       # this world's train -> test
    r = run_probe("data/world/tiny", train_world="data/world/classifier")     # another world's train -> test
    r["test"]["acc"], r["test"]["balanced_acc"], r["subsets"]["unseen_site"]["acc"]

Command line: ``python -m physdiff.world.audit WORLD`` (prints this probe with the world's recurrence).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physdiff.data import layout, media
from physdiff.data.labels import PAPER_MATERIALS
from physdiff.errors import DataError
from physdiff.eval.metrics import classification_metrics
from physdiff.world.truth import clip_key, clip_truth

CLIP_SECONDS = 0.25  # the paper's clip


@dataclass
class ProbeClips:
    keys: list[str]
    audio: np.ndarray  # (N, T) float32 at sample_rate
    labels: np.ndarray  # (N,) index into PAPER_MATERIALS


def load_clips(world_dir: str | Path, split: str, sample_rate: int = 16000) -> ProbeClips:
    """The paper-subset clips of one split of a world (annotated label, as the shard builder keeps them)."""
    world_dir = Path(world_dir)
    splits = layout.read_split_files(world_dir)
    if splits is None:
        raise DataError(f"{world_dir} has no train.txt / test.txt")
    n = int(round(CLIP_SECONDS * sample_rate))
    keys, clips, labels = [], [], []
    for vid in sorted(v for v, s in splits.items() if s == split):
        events, _ = layout.parse_times(world_dir / f"{vid}_times.txt", vid)
        chosen = [e for e in events if layout.subset_reason(e, "paper") is None]
        if not chosen:
            continue
        audio = media.load_audio(world_dir / f"{vid}_denoised.wav", sample_rate)  # (S,)
        for e in chosen:
            onset = int(round(e.time * sample_rate))
            if onset >= audio.shape[0]:
                continue
            keys.append(clip_key(vid, e.time, sample_rate))
            clips.append(media.cut_clip(audio, onset, n))
            labels.append(PAPER_MATERIALS.index(e.material))
    if not keys:
        raise DataError(f"no paper-subset clips in the {split} split of {world_dir}")
    return ProbeClips(keys, np.stack(clips), np.array(labels, np.int64))


def logmel_stats(audio: np.ndarray, sample_rate: int, n_mels: int = 48, n_fft: int = 512,
                 hop: int = 128) -> np.ndarray:
    """(N, 2 n_mels): mean and std over frames of each clip's log-mel bands (dB re the clip's peak).

    Peak-relative dB: the probe should not read material from the recording's overall level.
    """
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels,
                                               f_min=50.0, power=2.0)
    x = torch.from_numpy(np.asarray(audio, np.float32))  # (N, T)
    with torch.no_grad():
        m = mel(x)  # (N, n_mels, frames)
        db = 10 * torch.log10(m + 1e-10)
        db = db - db.amax(dim=(1, 2), keepdim=True)  # (N, n_mels, frames), 0 dB at the clip's peak
        db = db.clamp_min(-100.0)
    return torch.cat([db.mean(-1), db.std(-1)], dim=1).numpy().astype(np.float64)  # (N, 2 n_mels)


@dataclass
class Probe:
    mean: np.ndarray  # (D,) feature standardisation
    std: np.ndarray  # (D,)
    weight: torch.Tensor  # (D, K)
    bias: torch.Tensor  # (K,)

    def logits(self, feats: np.ndarray) -> torch.Tensor:
        z = torch.from_numpy((feats - self.mean) / self.std)  # (N, D)
        return z @ self.weight + self.bias  # (N, K)


def fit_probe(feats: np.ndarray, labels: np.ndarray, l2: float = 1e-2, classes: int = len(PAPER_MATERIALS),
              iters: int = 200) -> Probe:
    """Multinomial logistic regression: minimise mean cross-entropy + l2 |W|^2 (full batch, L-BFGS)."""
    mean, std = feats.mean(0), feats.std(0) + 1e-6
    z = torch.from_numpy((feats - mean) / std)  # (N, D) float64
    y = torch.from_numpy(labels)
    w = torch.zeros(z.shape[1], classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ w + b, y) + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return Probe(mean, std, w.detach(), b.detach())


def _scores(logits: torch.Tensor, labels: np.ndarray) -> dict[str, float]:
    m = classification_metrics(logits, torch.from_numpy(labels))
    return {"clips": int(labels.size), "acc": m["acc"], "balanced_acc": m["balanced_acc"],
            "chance_acc": m["chance_acc"], "chance_balanced_acc": m["chance_balanced_acc"]}


def run_probe(world_dir: str | Path, train_world: str | Path | None = None, sample_rate: int = 16000,
              l2: float = 1e-2) -> dict[str, Any]:
    """Train the probe on ``train_world``'s training clips (default: this world's) and score this world's test clips.

    Returns {"train": scores on the training clips, "test": scores on the test clips, "subsets": the test
    scores on seen / unseen sites and on objects struck / not struck in this world's training videos}.
    """
    train_world = Path(train_world) if train_world is not None else Path(world_dir)
    tr = load_clips(train_world, "train", sample_rate)
    te = load_clips(world_dir, "test", sample_rate)
    ftr, fte = logmel_stats(tr.audio, sample_rate), logmel_stats(te.audio, sample_rate)
    probe = fit_probe(ftr, tr.labels, l2)
    logits = probe.logits(fte)  # (N_test, K)
    truth = clip_truth(world_dir, sample_rate)
    t = [truth[k] for k in te.keys]
    masks = {"seen_site": np.array([not c.held_out_site for c in t]), "unseen_site": np.array([c.held_out_site for c in t]),
             "object_in_train": np.array([c.object_in_train for c in t]),
             "object_not_in_train": np.array([not c.object_in_train for c in t])}
    subsets = {name: _scores(logits[torch.from_numpy(m)], te.labels[m]) for name, m in masks.items() if m.any()}
    return {"train": _scores(probe.logits(ftr), tr.labels), "test": _scores(logits, te.labels), "subsets": subsets,
            "train_world": str(train_world), "world": str(world_dir), "features": int(ftr.shape[1])}
