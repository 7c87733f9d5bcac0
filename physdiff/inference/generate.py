"""Everything generation writes for one silent video (paper Sec. 3.4).

For every impact onset of a video:

1. the 22 frames around the onset (clamped at the video's ends exactly as the shards were cut) are decoded
   with PyAV and encoded by the *trained* video model into nu (and logits);
2. nu queries the diffusion run's retrieval index (Euclidean nearest training nu) and its latent (mu for
   "ours") completes the condition;
3. the diffusion model samples a normalised log-magnitude spectrogram (the ``sampling`` section: sampler,
   steps, guidance scale, eta -- the sigma temperature of eq. 9), in batches;
4. denormalise -> Griffin-Lim -> a peak-normalised WAV at ``audio.sample_rate``.

The output folder holds the clips (``clip_<i>_<t>s.wav``), the full-length ``soundtrack.wav`` with each
clip added at its onset, ``<video>_generated.mp4`` (the original video stream copied, the soundtrack as
AAC), ``comparison.png`` (generated vs ground-truth spectrograms, when a recording exists) and
``generation.json`` (onsets, retrieved training clips, sampler settings). Rerunning into the same folder
first removes what the previous ``generation.json`` listed, so no stale clip survives.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch

from physdiff.errors import DataError
from physdiff.inference.media import clip_frames, comparison_figure, ground_truth_clips, mux_soundtrack, place_clips, sibling_wav


def _remove_previous_outputs(out_dir: Path) -> None:
    """Delete the files a previous generation into ``out_dir`` listed (and nothing else)."""
    prev = out_dir / "generation.json"
    if not prev.is_file():
        return
    try:
        old = json.loads(prev.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return  # not ours to interpret: leave the folder as it is
    names = [c.get("wav") for c in old.get("clips", []) if isinstance(c, dict)]
    names += [old.get(k) for k in ("soundtrack", "mp4", "figure")]
    for n in names:
        if isinstance(n, str) and n and "/" not in n and n not in ("..", "."):
            (out_dir / n).unlink(missing_ok=True)
    prev.unlink(missing_ok=True)


def generate_video(synth: Any, video: str | Path, onsets: Sequence[float], out_dir: str | Path,
                   opts: Any, *, truth_wav: str | Path | None = None, progress: bool = True,
                   name: str | None = None, onset_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every output for one video (see the module docstring); returns the summary written to ``generation.json``.

    ``synth``: a :class:`physdiff.inference.synthesizer.Synthesizer`; ``opts``: the ``sampling`` section.
    ``onset_info`` (e.g. the detector's confidences) is recorded in ``generation.json``.
    """
    import soundfile as sf

    from physdiff.fileio import atomic_write_json
    from physdiff.physics import spectrogram_target

    t0 = time.time()
    video = Path(video)
    out_dir = Path(out_dir)
    cfg = synth.cfg
    sr = int(cfg.audio.sample_rate)
    vc = clip_frames(video, list(onsets), synth.video_cfg.video.num_frames, synth.video_cfg.shards.frame_size)
    nu, logits = synth.encode_frames(vc.frames)  # (B, D_nu), (B, K)
    cond, keys, dist = synth.conditions(nu, logits)
    spec = synth.sample(cond, opts, progress=progress)  # (B, 1, F, N)
    audio = synth.to_audio(spec, keys, opts)  # (B, T); phase from the retrieved clips with sampling.phase_init=physics
    if not torch.isfinite(audio).all():
        raise DataError(f"generation for {video} produced non-finite audio; nothing was written")

    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_previous_outputs(out_dir)
    stem = name or video.stem
    clips = []
    for i, t in enumerate(vc.onsets):
        p = out_dir / f"clip_{i:03d}_{t:.3f}s.wav"
        sf.write(p, (0.99 * audio[i]).numpy(), sr, subtype="FLOAT")
        conf = (onset_info or {}).get("confidences") or []
        clips.append({"onset": t, "onset_frame": vc.onset_frames[i], "frames_clamped": vc.clamped[i], "wav": p.name,
                      "retrieved": keys[i], "retrieval_distance": float(dist[i]),
                      "confidence": conf[i] if i < len(conf) else None})
    length = int(round(vc.duration * sr))
    track = place_clips(audio, vc.onsets, sr, length)
    sf.write(out_dir / "soundtrack.wav", track, sr, subtype="FLOAT")
    mp4 = mux_soundtrack(video, track, sr, out_dir / f"{stem}_generated.mp4")

    truth = None
    wav = Path(truth_wav) if truth_wav else sibling_wav(video)
    if wav is not None:
        gt_audio = ground_truth_clips(wav, vc.onsets, cfg.audio)  # (B, T)
        truth = spectrogram_target(gt_audio, cfg.audio)  # (B, 1, F, N)
    fig = comparison_figure(out_dir / "comparison.png", spec, truth, [f"{t:.2f} s" for t in vc.onsets],
                            f"{stem}: {synth.variant}, {opts.describe(synth.num_timesteps)}", cfg.audio)
    summary = {
        "video": str(video), "variant": synth.variant, "diffusion_run": str(synth.diffusion.run_dir),
        "sample_rate": sr, "fps": float(vc.fps), "num_frames": vc.num_frames, "duration": vc.duration,
        "soundtrack": "soundtrack.wav", "soundtrack_samples": length, "mp4": mp4.name, "figure": fig.name,
        "ground_truth": str(wav) if wav is not None else None, "sampling": asdict(opts),
        "onsets": onset_info or {"source": "given", "times": list(vc.onsets), "confidences": [None] * len(vc.onsets)},
        "spectrogram_mse_vs_truth": None if truth is None else float(((spec - truth) ** 2).mean()),
        "seconds": time.time() - t0, "clips": clips,
    }
    atomic_write_json(out_dir / "generation.json", summary)
    return summary
