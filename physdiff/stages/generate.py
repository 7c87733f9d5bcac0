"""Generation from silent video (paper Sec. 3.4): frames -> nu -> retrieved mu -> sampled spectrogram -> sound.

For every impact onset of a video:

1. the 22 frames around the onset (onset frame - 11 .. + 10, clamped at the video's ends exactly as the
   shards were cut) are decoded with PyAV and encoded by the *trained* video model into nu (and logits);
2. nu queries the retrieval index of the diffusion run (Euclidean nearest training nu, :mod:`physdiff.retrieval`)
   and its latent (mu for "ours") completes the condition;
3. the diffusion model samples a normalised log-magnitude spectrogram (DDIM by default; steps, guidance
   scale and eta -- the sigma temperature of eq. 9 -- from ``eval.generate_*`` or flags; ancestral DDPM over
   all T steps available), in batches;
4. denormalise -> Griffin-Lim -> a peak-normalised WAV at ``audio.sample_rate``.

Per video the output folder holds the clips (``clip_<i>_<t>s.wav``), the full-length ``soundtrack.wav`` with
each clip added at its onset, ``<video>_generated.mp4`` (the original video stream copied, the soundtrack
as AAC; PyAV), ``comparison.png`` (generated vs ground-truth spectrograms, when a recording exists) and
``generation.json`` (onsets, retrieved training clips, sampler settings).

    python cluster/launch.py --stage generate --local --preset tiny            # the test split, every video
    python cluster/generate.py --video clip.mp4 --onsets 0.5,1.2 --preset tiny --out out/   # one file
    python cluster/generate.py --video clip.mp4 --times clip_times.txt --steps 50 --guidance 2 --out out/

Bad input is a :class:`physdiff.errors.DataError` naming the file: an unreadable video, a video shorter
than the 22 frames the visual encoder needs around an onset, an onset before 0 or past the end.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from physdiff.errors import DataError

# ----------------------------------------------------------------------------- options


@dataclass
class SampleOptions:
    """How spectrograms are sampled (see :mod:`physdiff.diffusion.samplers`)."""

    sampler: str = "ddim"  # "ddim" | "ddpm"
    steps: int | None = 50  # None = all T steps
    eta: float = 0.0  # sigma_t = eta * sqrt(posterior variance) (eq. 9)
    guidance_scale: float = 1.0
    seed: int = 0
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.sampler not in ("ddim", "ddpm"):
            raise ValueError(f"sampler must be ddim or ddpm, got {self.sampler!r}")
        if self.steps is not None and self.steps < 1:
            self.steps = None
        if self.eta < 0 or self.batch_size < 1:
            raise ValueError("eta must be >= 0 and batch_size >= 1")

    @classmethod
    def for_generation(cls, cfg: Any, **override: Any) -> "SampleOptions":
        e = cfg.eval
        base = dict(sampler=e.generate_sampler, steps=e.generate_steps or None, eta=e.generate_eta,
                    guidance_scale=e.guidance_scale, seed=e.sample_seed, batch_size=e.batch_size)
        base.update({k: v for k, v in override.items() if v is not None})
        return cls(**base)

    @classmethod
    def for_evaluation(cls, cfg: Any, **override: Any) -> "SampleOptions":
        e = cfg.eval
        base = dict(sampler=e.sampler, steps=e.sample_steps or None, eta=e.eta, guidance_scale=e.guidance_scale,
                    seed=e.sample_seed, batch_size=e.batch_size)
        base.update({k: v for k, v in override.items() if v is not None})
        return cls(**base)

    def describe(self, num_timesteps: int) -> str:
        steps = self.steps or num_timesteps
        return f"{self.sampler.upper()}-{steps} (eta {self.eta:g}, guidance {self.guidance_scale:g})"


# ----------------------------------------------------------------------------- the video model


def load_video_encoder(video_run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Any]:
    """The trained visual encoder of a video run (newest complete checkpoint; EMA weights when kept) and its config."""
    from physdiff.config import Config
    from physdiff.data.labels import GREATEST_HITS_MATERIALS
    from physdiff.models.video import VideoEncoder
    from physdiff.training import checkpoint as ck

    run = Path(video_run_dir)
    cfg_path = run / "config.json"
    if not cfg_path.is_file():
        raise DataError(f"{run} is not a video run folder (no config.json): train the video stage first")
    cfg = Config.from_json(cfg_path)
    last = ck.latest_checkpoint(run / "checkpoints")
    if last is None:
        raise DataError(f"no complete checkpoint in {run / 'checkpoints'}: train the video stage first")
    state = ck.load_state(last.path)
    weights = state.get("ema") or state["model"]  # the export used the EMA weights when there were any
    vcfg = cfg.video
    model = VideoEncoder(vcfg.backbone, num_frames=vcfg.num_frames, fold_div=vcfg.tsm_fold_div,
                         num_classes=len(GREATEST_HITS_MATERIALS), dropout=vcfg.dropout,
                         small_widths=vcfg.small_widths, small_blocks=vcfg.small_blocks)  # no pretrained path: weights below
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise DataError(f"{last.path}/state.pt does not fit the video model of {cfg_path} "
                        f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.to(device).eval(), cfg


@dataclass
class VideoClips:
    """The frames around each onset of one video: ``frames`` (B, T, 3, S, S) uint8."""

    path: Path
    fps: Fraction
    num_frames: int
    onsets: list[float]
    onset_frames: list[int]
    clamped: list[int]  # frames of each window repeated because it ran past an end of the video
    frames: Tensor

    @property
    def duration(self) -> float:
        return self.num_frames / float(self.fps)


def clip_frames(path: str | Path, onsets: Sequence[float], num_frames: int = 22, size: int = 64) -> VideoClips:
    """Decode the ``num_frames`` frames around every onset (onset frame - n//2 .. + n - n//2 - 1), once.

    Windows that run past an end of the video repeat its first / last frame, exactly as the shards do
    (``physdiff.data.build``); how many were repeated is reported per clip. A video with fewer frames than
    one window, an onset before 0 or past the end, or an unreadable file is a DataError naming the file.
    """
    from physdiff.data import media

    path = Path(path)
    if not path.is_file():
        raise DataError(f"video not found: {path}")
    if not onsets:
        raise DataError(f"no onsets given for {path}")
    bad = [t for t in onsets if not (math.isfinite(t) and t >= 0)]
    if bad:
        raise DataError(f"onsets must be finite and >= 0 seconds; got {bad[:3]} for {path}")
    fps = media.video_fps(path)  # DataError "unreadable video" for a corrupt file
    f0s = [media.onset_frame(t, fps) for t in onsets]
    vf = media.decode_frames(path, media.window_wanted(f0s, num_frames), size)
    if vf.num_frames < num_frames:
        raise DataError(f"video {path} holds {vf.num_frames} frames ({vf.num_frames / float(vf.fps):.2f} s), shorter "
                        f"than the {num_frames} frames the visual encoder needs around an onset")
    late = [(t, f0) for t, f0 in zip(onsets, f0s) if f0 >= vf.num_frames]
    if late:
        t, f0 = late[0]
        raise DataError(f"onset {t:.3f} s is past the end of video {path} ({vf.num_frames} frames = "
                        f"{vf.num_frames / float(vf.fps):.3f} s at {float(vf.fps):.3f} fps)")
    clips, clamped = [], []
    for f0 in f0s:
        idx, n_clamped = media.frame_window(f0, num_frames, vf.num_frames)  # clamped at the ends, as the shards
        clamped.append(n_clamped)
        clips.append(np.stack([vf.frames[i] for i in idx]).transpose(0, 3, 1, 2))  # (T, 3, S, S)
    frames = torch.from_numpy(np.stack(clips))  # (B, T, 3, S, S) uint8
    return VideoClips(path, vf.fps, vf.num_frames, list(onsets), f0s, clamped, frames)


def read_onsets(path: str | Path) -> list[float]:
    """Onset times (seconds) from a file: Greatest Hits ``time material action reaction`` lines or one time per line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read onsets {path}: {e}") from None
    out = []
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        tok = s.split()[0].rstrip(",")
        try:
            t = float(tok)
        except ValueError:
            raise DataError(f"{path}:{n}: onset {tok!r} is not a number of seconds") from None
        out.append(t)
    if not out:
        raise DataError(f"no onsets in {path}")
    return out


def parse_onsets(text: str) -> list[float]:
    """``"0.5,1.2 2.0"`` -> [0.5, 1.2, 2.0] (commas or spaces)."""
    toks = [t for t in text.replace(",", " ").split() if t]
    try:
        return [float(t) for t in toks]
    except ValueError:
        raise DataError(f"--onsets must be numbers of seconds separated by commas, got {text!r}") from None


# ----------------------------------------------------------------------------- the synthesizer


@dataclass
class Synthesizer:
    """A trained diffusion run with its video model and retrieval index: nu -> condition -> spectrogram -> audio."""

    diffusion: Any  # physdiff.stages.diffusion.LoadedDiffusion
    video: nn.Module | None
    video_cfg: Any
    index: Any  # physdiff.retrieval.RetrievalIndex (None for the "video" variant)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def cfg(self) -> Any:
        return self.diffusion.cfg

    @property
    def variant(self) -> str:
        return self.diffusion.variant

    @classmethod
    def from_run(cls, diffusion_run_dir: str | Path, device: str | torch.device = "cpu",
                 with_video: bool = True) -> "Synthesizer":
        """Load everything generation needs from a finished diffusion run (building its index if missing)."""
        from physdiff.stages.diffusion import load_diffusion, upstream_run_dir
        from physdiff.stages.index import build_stage_index, finished_run

        run = Path(diffusion_run_dir)
        finished_run(run, "diffusion")
        loaded = load_diffusion(run, device)
        index = None
        if loaded.variant != "video":
            index, _path, _ = build_stage_index(run, tracking=loaded.cfg.tracking.enabled)
            index = index.to(device)
        video, vcfg = (None, None)
        if with_video:
            video, vcfg = load_video_encoder(upstream_run_dir(loaded.cfg, "video"), device)
        return cls(loaded, video, vcfg, index, torch.device(device))

    @classmethod
    def from_config(cls, cfg: Any, variant: str | None = None, device: str | torch.device = "cpu",
                    with_video: bool = True) -> "Synthesizer":
        from physdiff.stages.index import diffusion_run_for

        return cls.from_run(diffusion_run_for(cfg, variant), device, with_video)

    # ---------------------------------------------------------------- steps
    @torch.no_grad()
    def encode_frames(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """frames (B, T, 3, S, S) uint8 -> (nu (B, D_nu), logits (B, K)) with the trained video model."""
        from physdiff.data.augment import resize_clips
        from physdiff.data.reader import frames_to_float

        if self.video is None:
            raise RuntimeError("this synthesizer was loaded without its video model")
        x = resize_clips(frames_to_float(frames.to(self.device)), self.video_cfg.video.frame_size)  # (B, T, 3, S', S')
        nu, logits = self.video(x)  # (B, D_nu), (B, K)
        return nu.float(), logits.float()

    @torch.no_grad()
    def conditions(self, nu: Tensor, logits: Tensor | None = None) -> tuple[Tensor, list[str | None], Tensor]:
        """c (B, C) from nu: retrieve the latent of the nearest training nu (none for "video").

        Returns (c, retrieved training clip keys, retrieval distances (B,)); the visual input of the
        condition is nu, or the logits when the run was trained with ``diffusion.visual_input=logits``.
        """
        from physdiff.retrieval import retrieve
        from physdiff.stages.diffusion import assemble_condition

        nu = nu.to(self.device).float()  # (B, D_nu)
        visual = nu
        if self.cfg.diffusion.visual_input == "logits":
            if logits is None:
                raise ValueError("this diffusion run conditions on the video logits; pass them")
            visual = logits.to(self.device).float()
        if self.index is None:
            return assemble_condition(self.diffusion, visual, None), [None] * nu.shape[0], torch.full((nu.shape[0],), math.nan)
        e = self.cfg.eval
        vals, dist, idx = retrieve(self.index, nu, k=1, chunk_size=e.retrieval_chunk_size,
                                   query_batch=e.retrieval_query_batch)  # (B, 1, L), (B, 1), (B, 1)
        keys = [self.index.clip_keys[i] for i in idx[:, 0].tolist()]
        return assemble_condition(self.diffusion, visual, vals[:, 0]), keys, dist[:, 0].cpu()

    @torch.no_grad()
    def sample(self, cond: Tensor, opts: SampleOptions, progress: bool = False) -> Tensor:
        """Spectrograms x_0 (B, 1, F, N) in [-1, 1] for conditions (B, C), in batches of ``opts.batch_size``.

        One seeded generator walks the batches in order, so a given (seed, batch size) is reproducible.
        """
        from physdiff.stages.diffusion import sample_spectrograms

        g = torch.Generator(device="cpu").manual_seed(opts.seed)
        out = []
        starts = range(0, cond.shape[0], opts.batch_size)
        if progress and len(starts) > 1:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="batches", leave=False)
        for s in starts:
            c = cond[s : s + opts.batch_size].to(self.device)  # (b, C)
            out.append(sample_spectrograms(self.diffusion, c, generator=g, progress=progress, sampler=opts.sampler,
                                           steps=opts.steps, eta=opts.eta,
                                           guidance_scale=opts.guidance_scale).float().cpu())  # (b, 1, F, N)
        return torch.cat(out)

    def to_audio(self, spec: Tensor) -> Tensor:
        """(B, 1, F, N) -> denormalise -> Griffin-Lim -> peak-normalised audio (B, T) at ``audio.sample_rate``."""
        from physdiff.physics import spectrogram_to_audio

        return spectrogram_to_audio(spec, self.cfg.audio)


# ----------------------------------------------------------------------------- writing the outputs


def place_clips(clips: Tensor, onsets: Sequence[float], sample_rate: int, length: int, gain: float = 0.9) -> np.ndarray:
    """A soundtrack (length,) with clip i added at ``round(onset_i * sr)`` (cut at the end), peak <= ``gain``."""
    track = np.zeros(length, dtype=np.float64)
    for clip, t in zip(clips.double().cpu().numpy(), onsets):
        s = int(round(t * sample_rate))
        n = max(0, min(clip.shape[0], length - s))
        track[s : s + n] += gain * clip[:n]
    peak = float(np.abs(track).max()) if track.size else 0.0
    if peak > gain:  # overlapping clips: scale the whole track, never clip it
        track *= gain / peak
    return track.astype(np.float32)


def mux_soundtrack(video_path: str | Path, audio: np.ndarray, sample_rate: int, out_path: str | Path,
                   bitrate: int = 128000) -> Path:
    """The original video stream (packets copied, no re-encode) + ``audio`` (mono float) as an AAC track."""
    import av

    video_path, out_path = Path(video_path), Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp.mp4")
    try:
        with av.open(str(video_path)) as src, av.open(str(tmp), mode="w") as dst:
            if not src.streams.video:
                raise DataError(f"no video stream in {video_path}")
            vin = src.streams.video[0]
            vout = dst.add_stream_from_template(vin)
            aout = dst.add_stream("aac", rate=sample_rate)
            aout.codec_context.layout = "mono"
            aout.codec_context.bit_rate = bitrate
            # Encode the audio first (small), then interleave its packets with the copied video by time.
            apkts = []
            chunk = 1024 * 16
            for s in range(0, audio.shape[0], chunk):
                piece = np.ascontiguousarray(audio[s : s + chunk], dtype=np.float32)[None, :]  # (1, n)
                fr = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
                fr.sample_rate = sample_rate
                fr.pts = s
                fr.time_base = Fraction(1, sample_rate)
                apkts += list(aout.encode(fr))
            apkts += list(aout.encode(None))
            ai = 0
            for pkt in src.demux(vin):
                if pkt.dts is None:  # the demuxer's final flush packet
                    continue
                t = float(pkt.dts * pkt.time_base)
                while ai < len(apkts) and apkts[ai].dts is not None and float(apkts[ai].dts * apkts[ai].time_base) <= t:
                    dst.mux(apkts[ai])
                    ai += 1
                pkt.stream = vout
                dst.mux(pkt)
            for p in apkts[ai:]:
                dst.mux(p)
    except av.error.FFmpegError as e:
        tmp.unlink(missing_ok=True)
        raise DataError(f"could not write {out_path} from {video_path}: {e}") from e
    tmp.replace(out_path)
    return out_path


def comparison_figure(path: str | Path, generated: Tensor, truth: Tensor | None, labels: Sequence[str],
                      title: str = "", max_clips: int = 8) -> Path:
    """Normalised log-magnitude spectrograms, one row per clip: generated | ground truth (when given)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(generated.shape[0], max_clips)
    cols = 1 if truth is None else 2
    fig, axes = plt.subplots(n, cols, figsize=(3.2 * cols, 2.0 * n + 0.6), squeeze=False)
    for i in range(n):
        panels = [(generated[i, 0], "generated")] + ([] if truth is None else [(truth[i, 0], "ground truth")])
        for j, (x, name) in enumerate(panels):
            ax = axes[i][j]
            ax.imshow(x.float().cpu().numpy(), origin="lower", aspect="auto", cmap="magma", vmin=-1, vmax=1)
            ax.set_title(f"{labels[i]}: {name}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def ground_truth_clips(wav: str | Path, onsets: Sequence[float], audio_cfg: Any) -> Tensor:
    """Recorded clips (B, T) cut at the onsets from a wav (resampled to ``audio.sample_rate``)."""
    from physdiff.data.media import cut_clip, load_audio

    audio = load_audio(wav, audio_cfg.sample_rate)  # (N,)
    return torch.from_numpy(np.stack([cut_clip(audio, int(round(t * audio_cfg.sample_rate)), audio_cfg.num_samples)
                                      for t in onsets]))  # (B, T)


def sibling_wav(video: Path) -> Path | None:
    """The recording beside a video in the Greatest Hits layout (``<id>_denoised.mp4`` -> ``<id>_denoised.wav``)."""
    for cand in (video.with_suffix(".wav"), video.with_name(video.name.replace("_denoised_thumb.mp4", "_denoised.wav"))):
        if cand.is_file() and cand != video:
            return cand
    return None


def generate_video(synth: Synthesizer, video: str | Path, onsets: Sequence[float], out_dir: str | Path,
                   opts: SampleOptions, *, truth_wav: str | Path | None = None, progress: bool = True,
                   name: str | None = None) -> dict[str, Any]:
    """Every output for one video (see the module docstring); returns the summary written to ``generation.json``."""
    import soundfile as sf

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
    audio = synth.to_audio(spec)  # (B, T)

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = name or video.stem
    clips = []
    for i, t in enumerate(vc.onsets):
        p = out_dir / f"clip_{i:03d}_{t:.3f}s.wav"
        sf.write(p, (0.99 * audio[i]).numpy(), sr, subtype="FLOAT")
        clips.append({"onset": t, "onset_frame": vc.onset_frames[i], "frames_clamped": vc.clamped[i], "wav": p.name,
                      "retrieved": keys[i], "retrieval_distance": float(dist[i])})
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
                            f"{stem}: {synth.variant}, {opts.describe(synth.diffusion.model.schedule.num_timesteps)}")
    summary = {
        "video": str(video), "variant": synth.variant, "diffusion_run": str(synth.diffusion.run_dir),
        "sample_rate": sr, "fps": float(vc.fps), "num_frames": vc.num_frames, "duration": vc.duration,
        "soundtrack": "soundtrack.wav", "soundtrack_samples": length, "mp4": mp4.name, "figure": fig.name,
        "ground_truth": str(wav) if wav is not None else None, "sampling": asdict(opts),
        "spectrogram_mse_vs_truth": None if truth is None else float(((spec - truth) ** 2).mean()),
        "seconds": time.time() - t0, "clips": clips,
    }
    (out_dir / "generation.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# ----------------------------------------------------------------------------- the stage


def _split_videos(cfg: Any, split: str) -> dict[str, dict[str, Any]]:
    """{video id: {"video", "wav", "onsets"}} of the clips in ``split``'s shards (the clips evaluated)."""
    from physdiff.data.reader import make_loader
    from physdiff.stages import shards_dir

    videos: dict[str, dict[str, Any]] = {}
    for batch in make_loader(shards_dir(cfg), split, batch_size=64, mode="eval", frames=False):
        for m in batch["meta"]:
            v = videos.setdefault(m["video_id"], {"video": m["source_video"], "wav": m["source_wav"], "onsets": []})
            v["onsets"].append(float(m["onset_seconds"]))
    for v in videos.values():
        v["onsets"].sort()
    return videos


def generate_dir(cfg: Any, run_dir: Path, opts: SampleOptions) -> Path:
    import hashlib

    h = hashlib.sha256(json.dumps({"diffusion": run_dir.name, "opts": asdict(opts), "split": cfg.eval.generate_split},
                                  sort_keys=True).encode()).hexdigest()[:10]
    return cfg.paths.root() / "runs" / f"generate-{h}"


def run_generate(cfg: Any, *, out: str | Path | None = None, opts: SampleOptions | None = None,
                 device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """The ``generate`` task stage: every video of ``eval.generate_split`` (its shard clips' onsets)."""
    from physdiff.stages.index import diffusion_run_for

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    opts = opts or SampleOptions.for_generation(cfg)
    run_dir = diffusion_run_for(cfg)
    out_dir = Path(out) if out else generate_dir(cfg, run_dir, opts)
    done = out_dir / "DONE.json"
    if done.is_file():
        print(f"[generate] complete: {out_dir}", flush=True)
        return json.loads(done.read_text())
    synth = Synthesizer.from_run(run_dir, device)
    videos = _split_videos(cfg, cfg.eval.generate_split)
    if not videos:
        raise DataError(f"no clips in the {cfg.eval.generate_split} split to generate for")
    print(f"[generate] {len(videos)} videos, {sum(len(v['onsets']) for v in videos.values())} clips, "
          f"{synth.variant}, {opts.describe(synth.diffusion.model.schedule.num_timesteps)} -> {out_dir}", flush=True)
    items = sorted(videos.items())
    it: Any = items
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(items, desc="generate", unit="video")
    results = {}
    for vid, v in it:
        results[vid] = generate_video(synth, v["video"], v["onsets"], out_dir / vid, opts,
                                      truth_wav=v["wav"], progress=False, name=vid)
    summary = {"stage": "generate", "out": str(out_dir), "diffusion_run": str(run_dir), "videos": len(results),
               "clips": sum(len(r["clips"]) for r in results.values()), "sampling": asdict(opts),
               "per_video": {vid: str(out_dir / vid) for vid in results}}
    out_dir.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"[generate] wrote {summary['clips']} clips for {summary['videos']} videos under {out_dir}", flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    import argparse

    from physdiff.config import add_config_args, config_from_args

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None)
    add_config_args(ap)
    args = ap.parse_args(argv)
    run_generate(config_from_args(args), out=args.out)
    return 0


if __name__ == "__main__":
    from physdiff.errors import run_cli

    run_cli(lambda: main(sys.argv[1:]))
