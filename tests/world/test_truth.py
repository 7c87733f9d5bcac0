"""The ground truth is real: the picture's contact frame, the estimator round trip, material statistics,
and an environment that modal resynthesis alone cannot explain."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import torch
from scipy import signal

from physdiff.world.materials import MATERIALS
from physdiff.world.sound import synth_modes
from physdiff.world.stats import material_statistics


def _videos(out: Path):
    for pj in sorted(out.glob("*_physics.json")):
        truth = json.loads(pj.read_text())
        yield truth, out / f"{truth['id']}_denoised.mp4", out / f"{truth['id']}_denoised.wav"


def _stick_lowest_row(frames: np.ndarray) -> np.ndarray:
    """Per frame, the lowest image row holding stick pixels (the green lacquer), -1 if none. (N,)"""
    rgb = frames.astype(np.int16)  # (N, H, W, 3)
    green = (rgb[..., 1] - np.maximum(rgb[..., 0], rgb[..., 2])) > 40  # (N, H, W)
    rows = np.where(green.any(axis=2), np.arange(frames.shape[1])[None, :], -1)  # (N, H)
    return rows.max(axis=1)


def test_contact_frame_matches_annotation(clean_world):
    """Measured from the decoded video: the stick tip is lowest at the annotated contact (+-1 frame).

    At 64 px a slow strike on a soft surface (slow approach, slower lift-off) leaves the tip on the same
    lowest row for 2-3 frames, so the check is the distance from the contact time to the nearest of the
    tied lowest frames (measured: at most 0.5 frame), and the ties stay short and centred (their centre
    within 1.1 frames of the contact, median under 0.5: the lift-off is slower than the approach, so ties
    lean late).
    """
    out, world, _ = clean_world
    checked, nearest, centre = 0, [], []
    for truth, mp4, _ in _videos(out):
        with av.open(str(mp4)) as c:
            frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
        lowest = _stick_lowest_row(frames)
        fps = world.fps
        times = [e["time"] for e in truth["events"]]
        for i, t in enumerate(times):
            k0 = t * fps
            # frames nearer to this event than to its neighbours (the stick follows the nearest strike)
            prev_mid = (times[i - 1] + t) / 2 * fps if i else 0.0
            next_mid = (times[i + 1] + t) / 2 * fps if i + 1 < len(times) else len(frames)
            lo, hi = max(int(np.ceil(prev_mid)), int(k0) - 6), min(int(next_mid) + 1, int(k0) + 8, len(frames))
            window = lowest[lo:hi]
            ties = lo + np.flatnonzero(window == window.max())  # frames where the tip is lowest
            assert ties.size <= 4, (t, ties)
            nearest.append(float(np.min(np.abs(ties - k0))))
            centre.append(float(np.mean(ties)) - k0)
            checked += 1
    assert checked >= 10
    assert np.max(nearest) <= 1.0, nearest
    assert np.max(np.abs(centre)) <= 1.1 and np.median(np.abs(centre)) <= 0.5, centre


def _clip_44k(audio: np.ndarray, sr: int, t: float) -> np.ndarray:
    s = int(round(t * sr))
    clip = audio[s:s + sr // 4]  # the paper's 0.25 s clip
    return signal.resample_poly(clip, 147, 320)  # 96 kHz -> 44.1 kHz


def _strongest_isolated(f: np.ndarray, p: np.ndarray, df: float, k: int = 3) -> list[int]:
    """The k strongest true modes with no other mode within 3 STFT bins and 25 dB (one mode per bin)."""
    out = []
    for i in np.argsort(p)[::-1]:
        if f[i] > 20000:
            continue
        if any(j != i and abs(f[j] - f[i]) < 3 * df and p[j] > p[i] - 25 for j in range(f.size)):
            continue
        out.append(int(i))
        if len(out) == k:
            break
    return out


def test_estimator_recovers_true_strongest_modes(clean_world):
    """On clean events the physics estimator finds the true strongest modes.

    Measured (seed 3, 12 events x 3 modes): "paper" rule: |f error| median ~1 Hz (max < 4 Hz, bin 21.5 Hz),
    decay error median ~ -12 % (max ~45 %), relative power within a few dB; "highres": f error ~0.01 Hz,
    decay error < 3 %, power < 0.5 dB.
    """
    from physdiff.physics import estimate_modes

    out, world, _ = clean_world
    df = 44100 / 2048
    errs: dict[str, dict[str, list[float]]] = {m: {"f": [], "d": [], "p": []} for m in ("paper", "highres")}
    for truth, _, wav in _videos(out):
        audio, sr = sf.read(str(wav), dtype="float64")
        for ev in truth["events"]:
            x = torch.tensor(_clip_44k(audio, sr, ev["time"])[None], dtype=torch.float32)  # (1, T)
            f = np.array(ev["modes"]["freq_hz"])
            p = np.array(ev["modes"]["power_db"])
            lam = np.array(ev["modes"]["decay_db_s"])
            top = _strongest_isolated(f, p, df)
            bins = [int(round(f[i] / df)) for i in top]
            for method in errs:
                m = estimate_modes(x, 44100, method=method)
                for i, b in zip(top, bins):
                    errs[method]["f"].append(abs(m.freq[0, b].item() - f[i]))
                    errs[method]["d"].append(m.decay[0, b].item() / lam[i] - 1.0)
                    rel_est = m.power[0, b].item() - m.power[0, bins[0]].item()
                    errs[method]["p"].append(rel_est - (p[i] - p[top[0]]))
    paper, hr = errs["paper"], errs["highres"]
    assert len(paper["f"]) >= 30
    assert np.median(paper["f"]) < 3.0 and np.max(paper["f"]) < df / 2
    assert abs(np.median(paper["d"])) < 0.3 and np.max(np.abs(paper["d"])) < 0.8
    assert np.median(np.abs(paper["p"])) < 3.0
    assert np.median(hr["f"]) < 0.5 and np.median(np.abs(hr["d"])) < 0.05 and np.median(np.abs(hr["p"])) < 1.0


def test_materials_differ_as_the_table_promises():
    """The world's per-material statistics follow the measured table (material_modes.md)."""
    stats = {m: material_statistics(m, objects=120) for m in MATERIALS}
    for m, spec in MATERIALS.items():
        s = stats[m]
        # medians within a factor 1.6 of the measured ones
        assert 1 / 1.6 < s["freq"][1] / spec.target_freq[1] < 1.6, (m, s["freq"], spec.target_freq)
        assert 1 / 1.6 < s["rt60"][1] / spec.target_rt60[1] < 1.6, (m, s["rt60"], spec.target_rt60)
        assert abs(s["spread"] - spec.target_spread) < 12, (m, s["spread"])
    # orderings the table promises: ringing vs damped, high vs low, Rayleigh vs soft proxies
    assert stats["ceramic"]["rt60"][1] > 2 * stats["plastic"]["rt60"][1]
    assert stats["metal"]["rt60"][1] > 2 * stats["paper"]["rt60"][1]
    assert stats["glass"]["freq"][1] > 2 * stats["metal"]["freq"][1]
    assert stats["ceramic"]["rt60_ratio"] < 0.5 < stats["glass"]["rt60_ratio"] < 1.0
    assert stats["carpet"]["rt60_ratio"] > 1.15 and stats["paper"]["rt60_ratio"] > 1.1


def _residual_ratio_db(out: Path) -> float:
    """Median over hits of 10 log10(|recording - eq. 4 with the true modes|^2 / |recording|^2) on 0.25 s clips."""
    ratios = []
    for truth, _, wav in _videos(out):
        audio, sr = sf.read(str(wav), dtype="float64")
        for ev in truth["events"]:
            if ev["action"] != "hit" or ev["reaction"] != "static":
                continue
            s = int(round(ev["time"] * sr))
            n = min(sr // 4, audio.size - s)
            rec = audio[s:s + n]
            m = ev["modes"]
            modal = synth_modes(np.array(m["freq_hz"]), np.array(m["power_db"]), np.array(m["decay_db_s"]), sr)
            modal = np.pad(modal, (0, max(0, n - modal.size)))[:n]
            ratios.append(10 * np.log10(np.sum((rec - modal) ** 2) / np.sum(rec**2)))
    return float(np.median(ratios))


def test_environment_is_what_modes_cannot_explain(small_world, clean_world):
    """Clean events are eq. 4 plus a short click; rooms and noise leave a residual far above that."""
    clean = _residual_ratio_db(clean_world[0])
    noisy = _residual_ratio_db(small_world[0])
    assert clean < -15.0, clean
    assert noisy > clean + 8.0, (noisy, clean)


def _modal_and_fitted_residual_loss(out: Path, steps: int = 60) -> tuple[float, float]:
    """Mean MR-STFT loss over the world's hit clips (44.1 kHz, 0.25 s, as the prior stage sees them) of
    modal resynthesis from the estimated modes alone, and of modal + residual (eqs. 5-6, M = 100) whose
    gamma and w are fitted to each clip directly by gradient descent: the best any prior model could do."""
    from physdiff.physics import (MultiResolutionSTFTLoss, ResidualNoise, estimate_modes, peak_normalize,
                                  synthesize_modes)

    clips = []
    for truth, _, wav in _videos(out):
        audio, sr = sf.read(str(wav), dtype="float64")
        for ev in truth["events"]:
            if ev["action"] == "hit" and ev["reaction"] == "static":
                clip = _clip_44k(audio, sr, ev["time"])
                clips.append(np.pad(clip, (0, 11025 - clip.size))[:11025])
    target = peak_normalize(torch.tensor(np.stack(clips), dtype=torch.float32))  # (B, T)
    modal = synthesize_modes(estimate_modes(target, 44100), 44100, target.shape[-1])  # (B, T)
    loss = MultiResolutionSTFTLoss()
    noise = ResidualNoise(100, 44100, target.shape[-1])
    B = target.shape[0]
    gamma = torch.full((B, 100), 200.0, requires_grad=True)  # dB/s
    logw = torch.full((B, 100), -6.0, requires_grad=True)  # w = exp(logw) > 0, starts quiet
    opt = torch.optim.Adam([{"params": [gamma], "lr": 20.0}, {"params": [logw], "lr": 0.1}])
    for _ in range(steps):
        full = peak_normalize(modal + noise(gamma.clamp_min(0.0), logw.exp()))
        err = loss(full, target)
        opt.zero_grad()
        err.backward()
        opt.step()
    with torch.no_grad():
        full = peak_normalize(modal + noise(gamma.clamp_min(0.0), logw.exp()))
        return float(loss(peak_normalize(modal), target)), float(loss(full, target))


def test_residual_explains_what_modes_cannot(small_world, clean_world):
    """The environment is what eqs. 5-6 exist for: with rooms and noise, modal + fitted residual beats modal
    alone by a wide margin (measured, seed 0: MR-STFT 2.63 -> 1.41); on clean events (seed 3) the residual has
    little to add (0.86 -> 0.79). The trained prior stage shows the same gap (docs/results.md, Fig. 5a)."""
    noisy_modal, noisy_full = _modal_and_fitted_residual_loss(small_world[0])
    clean_modal, clean_full = _modal_and_fitted_residual_loss(clean_world[0])
    assert noisy_full < 0.8 * noisy_modal, (noisy_modal, noisy_full)
    assert noisy_modal - noisy_full > 2 * (clean_modal - clean_full), (noisy_modal, noisy_full, clean_modal, clean_full)
