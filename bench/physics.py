"""Benchmark of the physics core: estimation speed, synthesis speed and memory, estimator accuracy.

    python bench/physics.py            # full run (< 2 min on a 2-core CPU)
    python bench/physics.py --quick    # smaller batches, a few seconds
    python bench/physics.py --device cuda
    python bench/physics.py --threads 1   # steadier ratios on a busy machine
    python bench/physics.py --world DIR   # + table 4 on a generated world's recordings (shards/synth.py)

Prints four tables:
1. clips/s of ``estimate_modes`` at batch 256 (paper rule; paper/4: its whole-clip FFT zero-padded
   4x, ``fft_pad=4``; official: the official code's rule exactly; highres), the STFT alone, the
   per-bin reference of the paper rule (tests/physics/reference_estimator.py), the per-bin transcription
   of the official rule (tests/physics/official_reference.py) and the official double loop itself
   (one clip), with ratios;
2. synthesis (eq. 4) throughput at batch 64 x 1025 modes x 11025 samples, forward and
   forward+backward, and each one's peak memory (CPU: peak-RSS growth over the RSS before the call,
   in a fresh subprocess, with the default allocator and with glibc's mmap threshold fixed so the
   peak RSS is the live peak; CUDA: torch.cuda.max_memory_allocated);
3. accuracy of both estimators on clean and noisy (SNR 20 dB) clips of 6 well-separated damped
   modes: |f error| (Hz) and |lambda error| (relative), median / 90th percentile / max, at the
   bins holding the true modes, over all modes and over the modes that reach the -80 dB floor;
4. how far the paper rule's f is from the official rule's, on the synthetic world's impact sounds
   per material group (tonal metal/glass/ceramic, wood/plastic/rock/drywall, noise-like
   cloth/carpet/paper; each strike's modes + contact click + background noise 60 dB below the peak)
   and, with ``--world DIR``, on a generated world's recordings (room, noise; the paper subset):
   median |delta f| over all bins, over the bins the official gate leaves open (both rules pick an
   FFT point: the grid offset, j x 0.000363 Hz, and window edges) and over the loud bins (first-frame
   p >= -40 dB), its 90th percentile, and the share of bins where the 0 dB gate keeps the bin centre.
Speeds depend on machine load: compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import physdiff  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP)
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the per-bin reference lives in tests/ (it is the tests' oracle)

from physdiff.physics import Modes, estimate_modes, stft_magnitude, synthesize_modes  # noqa: E402

SR, T, N_FFT, HOP, FLOOR = 44100, 11025, 2048, 256, -80.0
BIN_HZ = SR / N_FFT


def random_modes(batch: int, k: int, seed: int, decay_range=(100.0, 1500.0), gap_bins: int = 16):
    """Well-separated modes: float64 (B, k) arrays of f (Hz, >= 0.15 bin from bin edges), p (dB), lambda."""
    rng = np.random.default_rng(seed)
    slots = np.arange(int(300 / BIN_HZ), int(15000 / BIN_HZ), gap_bins)
    bins = np.sort(np.stack([rng.choice(slots, k, replace=False) for _ in range(batch)]), axis=1)
    freq = (bins + rng.uniform(-0.35, 0.35, (batch, k))) * BIN_HZ
    return freq, rng.uniform(-20, 0, (batch, k)), rng.uniform(*decay_range, (batch, k))


def make_clips(freq, power, decay, snr_db=None, seed=0, device="cpu") -> torch.Tensor:
    modes = Modes(*(torch.tensor(a, dtype=torch.float64) for a in (freq, power, decay)))
    audio = synthesize_modes(modes, SR, T)  # (B, T) float64
    if snr_db is not None:
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(audio.shape, generator=gen, dtype=torch.float64)
        audio = audio + noise * audio.pow(2).mean(-1, keepdim=True).sqrt() * 10 ** (-snr_db / 20)
    return audio.float().to(device)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int) -> float:
    """Best wall time of ``repeats`` runs after one warm-up."""
    fn()
    _sync(device)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def speed_table(args) -> None:
    from tests.physics.official_reference import official_reference, official_reference_batch
    from tests.physics.reference_estimator import reference_paper_rule_batch

    batch = 64 if args.quick else 256
    audio = make_clips(*random_modes(batch, 6, seed=0), device=args.device)
    rows = []
    t_stft = timed(lambda: stft_magnitude(audio, N_FFT, HOP), args.device, args.repeats)
    rows.append(("STFT magnitude only", batch / t_stft))
    for label, method, opts in ESTIMATORS:
        t = timed(lambda: estimate_modes(audio, SR, method=method, **opts), args.device, args.repeats)
        rows.append((f"estimate_modes {label}", batch / t))
    n_ref = 4 if args.quick else 16
    ref_audio = audio[:n_ref].double().cpu().numpy()
    t0 = time.perf_counter()
    reference_paper_rule_batch(ref_audio, SR)
    rows.append(("per-bin reference (numpy loops)", n_ref / (time.perf_counter() - t0)))
    ref = rows[-1][1]
    t0 = time.perf_counter()
    official_reference_batch(ref_audio, SR)
    rows.append(("official, per-bin transcription", n_ref / (time.perf_counter() - t0)))
    t0 = time.perf_counter()
    official_reference(ref_audio[0], SR, literal=True)
    rows.append(("official double loop (1 clip)", 1 / (time.perf_counter() - t0)))
    print(f"\n## Estimation speed (batch {batch}, device {args.device}, {torch.get_num_threads()} threads)")
    print(f"{'':34s} {'clips/s':>10s} {'x reference':>12s} {'x STFT':>8s}")
    for name, cps in rows:
        print(f"{name:34s} {cps:10.1f} {cps / ref:12.1f} {cps / rows[0][1]:8.2f}")
    by_name = dict(rows)
    print(f"paper's 10k clips: vectorised {1e4 / rows[1][1]:.1f} s, per-bin reference {1e4 / ref / 60:.1f} min; "
          f"official rule vectorised {1e4 / by_name['estimate_modes official']:.1f} s, "
          f"official double loop {1e4 / by_name['official double loop (1 clip)'] / 3600:.1f} h")


def _proc_status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _synth_worker(batch: int, backward: bool, device: str) -> dict:
    """Run in a fresh process: one synthesis (optionally + backward), report time and peak memory.

    CPU peak = growth of the process's peak RSS over its RSS just before the call (inputs included),
    with the peak mark reset first so import-time allocations do not hide it."""
    gen = torch.Generator().manual_seed(0)
    f = (torch.rand(batch, 1025, generator=gen) * 22000).to(device)
    p = (-torch.rand(batch, 1025, generator=gen) * 60).to(device)
    lam = (torch.rand(batch, 1025, generator=gen) * 1000).to(device)
    params = [x.requires_grad_(backward) for x in (f, p, lam)]
    _sync(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    exact = _reset_peak_rss()
    base_rss = _proc_status_kib("VmRSS") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    out = synthesize_modes(Modes(*params), SR, T)
    if backward:
        out.square().mean().backward()
    _sync(device)
    dt = time.perf_counter() - t0
    if device.startswith("cuda"):
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        hwm = _proc_status_kib("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = (hwm - base_rss) / 1024
    return {"seconds": dt, "peak_mib": peak, "exact_peak": exact}


def synth_table(args) -> None:
    import os

    batch = 8 if args.quick else 64
    print(f"\n## Synthesis, eq. 4 (batch {batch} x 1025 modes x {T} samples, float32, device {args.device})")
    print(f"{'':22s} {'seconds':>8s} {'clips/s':>8s} {'peak MiB':>9s} {'live peak MiB':>14s}")
    for backward in (False, True):
        results = []
        # 1st run: the default allocator (what a user sees; glibc keeps freed blocks, so RSS overstates);
        # 2nd run: a fixed mmap threshold, so freed blocks go back at once and peak RSS = live peak.
        for env_extra in ({}, {"MALLOC_MMAP_THRESHOLD_": "131072"}):
            cmd = [sys.executable, __file__, "--_synth-worker", json.dumps([batch, backward, args.device])]
            res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env_extra})
            if res.returncode != 0:
                raise RuntimeError(f"synthesis worker failed:\n{res.stderr}")
            results.append(json.loads(res.stdout.strip().splitlines()[-1]))
        name = "forward + backward" if backward else "forward"
        r, live = results
        cps = batch / r["seconds"]
        print(f"{name:22s} {r['seconds']:8.2f} {cps:8.1f} {r['peak_mib']:9.0f} {live['peak_mib']:14.0f}")
    naive = batch * 1025 * T * 4 / 2**20
    print(f"(one naive (B, D, T) float32 tensor would be {naive:.0f} MiB; autograd would keep several)")


def _errors(modes: Modes, freq, decay):
    bins = np.rint(freq / BIN_HZ).astype(int)
    f = np.take_along_axis(modes.freq.double().cpu().numpy(), bins, 1)
    lam = np.take_along_axis(modes.decay.double().cpu().numpy(), bins, 1)
    return np.abs(f - freq), np.abs(lam / decay - 1.0)


# (label, method, options): the paper rule on the official 4 Hz grid and on a 1 Hz grid, the official
# rule, and highres.
ESTIMATORS = (("paper", "paper", {}), ("paper/4", "paper", {"fft_pad": 4}), ("official", "official", {}),
              ("highres", "highres", {}))


def accuracy_table(args) -> None:
    batch = 16 if args.quick else 64
    freq, power, decay = random_modes(batch, 6, seed=1, decay_range=(20.0, 1500.0))
    reach = (power - power.max(1, keepdims=True)) - decay * T / SR < FLOOR - 10
    print(f"\n## Accuracy at the bins holding the true modes ({batch} clips x 6 modes, lambda 20-1500 dB/s;")
    print(f"## {reach.mean():.0%} of the modes reach the -80 dB floor inside the clip)")
    print(f"{'signal':8s} {'method':8s} {'|f err| Hz med/p90/max':>24s}", end=" ")
    print(f"{'|lam err| all med/p90':>22s} {'reach floor med/max':>20s}")
    for snr in (None, 20.0):
        audio = make_clips(freq, power, decay, snr_db=snr, seed=2, device=args.device)
        for label, method, opts in ESTIMATORS:
            fe, le = _errors(estimate_modes(audio, SR, method=method, **opts), freq, decay)
            sig = "clean" if snr is None else f"SNR {snr:.0f}"
            print(
                f"{sig:8s} {label:8s} {np.median(fe):8.3f}/{np.percentile(fe, 90):6.3f}/{fe.max():6.2f}"
                f" {np.median(le):10.1%}/{np.percentile(le, 90):9.1%}"
                f" {np.median(le[reach]):9.1%}/{le[reach].max():8.1%}"
            )


GROUPS = (("tonal", ("metal", "glass", "ceramic")), ("wood-like", ("wood", "plastic", "rock", "drywall")),
          ("noise-like", ("cloth", "carpet", "paper")))


def _paper_vs_official(audio: torch.Tensor) -> dict[str, float]:
    """|f_paper - f_official| statistics over clips (B, T) at 44.1 kHz."""
    off = estimate_modes(audio, SR, method="official")
    pap = estimate_modes(audio, SR, method="paper")
    df = (pap.freq.double() - off.freq.double()).abs().cpu().numpy()  # (B, D)
    loud = off.power.cpu().numpy() >= -40.0
    centres = np.arange(df.shape[1]) * BIN_HZ
    gated = np.isclose(off.freq.double().cpu().numpy(), centres[None], atol=1e-6, rtol=0)
    return {"clips": df.shape[0], "all_med": float(np.median(df)), "open_med": float(np.median(df[~gated])),
            "loud_med": float(np.median(df[loud])),
            "loud_p90": float(np.percentile(df[loud], 90)), "loud_share": float(loud.mean()),
            "gated": float(gated.mean()), "gated_loud": float(gated[loud].mean())}


def _print_vs_row(name: str, r: dict[str, float]) -> None:
    print(f"{name:24s} {r['clips']:5d} {r['all_med']:8.2f} {r['open_med']:8.2f} {r['loud_med']:9.2f} {r['loud_p90']:9.2f}"
          f" {r['loud_share']:8.1%} {r['gated']:9.1%} {r['gated_loud']:10.1%}")


def world_recording_clips(source: Path) -> dict[str, torch.Tensor]:
    """The paper-subset clips (0.25 s at 44.1 kHz from each annotated onset) of a generated world, by material."""
    from physdiff.data import layout, media

    by_mat: dict[str, list[np.ndarray]] = {}
    for vid in layout.list_video_ids(source):
        v = layout.Video(vid, Path(source))
        events, _ = layout.parse_times(v.times, vid)
        events = [e for e in events if layout.subset_reason(e, "paper") is None]
        if not events:
            continue
        audio = media.load_audio(v.wav, SR)  # (N,)
        for e in events:
            clip = media.cut_clip(audio, int(round(e.time * SR)), T)
            if np.abs(clip).max() > 0:
                by_mat.setdefault(e.material, []).append(clip)
    return {m: torch.from_numpy(np.stack(c)) for m, c in sorted(by_mat.items())}


def official_table(args) -> None:
    from tests.physics.signals import world_clips

    per = 4 if args.quick else 16
    print(f"\n## Paper rule vs official rule: |f_paper - f_official| (Hz) at 44.1 kHz / 2048; loud = p >= -40 dB;")
    print("## gated = bins where the official 0 dB gate keeps the bin centre; open = the other bins (both rules pick an FFT point)")
    head = f"{'clips':24s} {'n':>5s} {'all med':>8s} {'open med':>8s} {'loud med':>9s} {'loud p90':>9s} {'loud bins':>8s} {'gated':>9s} {'gated loud':>10s}"
    print(head)
    for name, mats in GROUPS:
        audio = torch.from_numpy(world_clips(mats, per, seed=5)).float()
        _print_vs_row(f"sounds {name}", _paper_vs_official(audio))
    if args.world:
        clips = world_recording_clips(Path(args.world))
        print(f"recordings of {args.world}:")
        groups = {name: [m for m in mats if m in clips] for name, mats in GROUPS}
        for name, mats in groups.items():
            if mats:
                _print_vs_row(f"  {name}", _paper_vs_official(torch.cat([clips[m] for m in mats])))
        for m, audio in clips.items():
            _print_vs_row(f"  {m}", _paper_vs_official(audio))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches (seconds, for CI / smoke)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--world", default="", help="also compare paper vs official on this generated world's recordings")
    parser.add_argument("--_synth-worker", dest="synth_worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.synth_worker:
        batch, backward, device = json.loads(args.synth_worker)
        print(json.dumps(_synth_worker(batch, backward, device)))
        return
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    speed_table(args)
    synth_table(args)
    accuracy_table(args)
    official_table(args)
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
