"""Griffin-Lim from a random phase vs from the physics (eq. 4) phase of the retrieved training clip's modes.

    python bench/phase.py                                   # the README main job's "ours" run in ./data (tiny)
    python bench/phase.py --data-root data/quality --preset tiny world.videos=60 --iters 8 32 100

For every test clip: the "ours" run samples its spectrogram as the evaluation does (test nu -> retrieved mu ->
the ``sampling`` section), then Griffin-Lim turns it into audio starting from (a) a random phase and (b) the
phase of the eq.-4 resynthesis of the retrieved training clip's modes (``sampling.phase_init=physics``), at
each iteration count. Reported per start and count, as means over the test clips with 95 % bootstrap
intervals, and the paired difference physics - random:

- spectral convergence to the generated magnitude, ``|| S - |STFT(x)| || / || S ||`` (how well the waveform
  realises the spectrogram the model sampled), and
- the MR-STFT distance of the waveform to the test recording.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def _ci(x: torch.Tensor, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, x.numel(), (reps, x.numel()), generator=g)
    m = x[idx].mean(1)
    return float(x.mean()), float(torch.quantile(m, 0.025)), float(torch.quantile(m, 0.975))


def main() -> int:
    from physdiff import identity
    from physdiff.config import resolve_config
    from physdiff.inference.synthesizer import Synthesizer
    from physdiff.physics import MultiResolutionSTFTLoss, denormalize_spectrogram, griffin_lim, peak_normalize
    from physdiff.physics.phase import modal_phase, spectral_convergence
    from physdiff.stages.clips import load_split

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default="data", help="the data folder holding the finished runs (default: data)")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--iters", type=int, nargs="+", default=[8, 32, 100])
    ap.add_argument("--max-clips", type=int, default=0, help="test clips used (0 = all)")
    ap.add_argument("--json", default=None, help="write the table as JSON here")
    ap.add_argument("overrides", nargs="*", help="the config overrides of the run to score (key=value)")
    args = ap.parse_args()

    cfg = resolve_config(args.preset, [*args.overrides, f"paths.data_root={Path(args.data_root).resolve()}"])
    cfg = identity.variant_config(cfg, "ours")
    synth = Synthesizer.from_run(identity.artifact_dir(cfg, "diffusion"), "cpu", with_video=False)
    test = load_split(synth.cfg, "test")
    n = len(test.keys) if not args.max_clips else min(args.max_clips, len(test.keys))
    t0 = time.time()
    cond, keys, _ = synth.conditions(test.nu[:n], test.logits[:n])
    spec = synth.sample(cond, synth.cfg.sampling)  # (n, 1, F, N): the evaluation's samples
    a = synth.cfg.audio
    logmag = denormalize_spectrogram(spec.squeeze(1), a)  # (n, F, N)
    target = (logmag.exp() - a.spec_log_eps).clamp_min(0.0)  # (n, F, N): the magnitude the model sampled
    phase = modal_phase(synth.training_modes(keys), a)  # (n, F, N)
    rec = peak_normalize(test.audio[:n])  # (n, T)
    mr = MultiResolutionSTFTLoss()
    print(f"{n} test clips of {synth.diffusion.run_dir.name}, {synth.cfg.sampling.describe(synth.num_timesteps)} "
          f"(sampled in {time.time() - t0:.0f} s); 95 % bootstrap intervals over clips")
    rows = []
    print("| iterations | start | spectral convergence ↓ | MR-STFT to the recording ↓ | seconds |")
    print("|---|---|---|---|---|")
    for iters in args.iters:
        per = {}
        for start in ("random", "physics"):
            t1 = time.time()
            raw = griffin_lim(logmag, a, init_phase=phase if start == "physics" else None, n_iter=iters)  # (n, T)
            secs = time.time() - t1
            sc = spectral_convergence(raw, target, a).double()  # (n,): at the magnitude's own scale
            audio = peak_normalize(raw)  # as every metric sees a waveform
            d = torch.tensor([float(mr(audio[i : i + 1], rec[i : i + 1])) for i in range(n)], dtype=torch.float64)
            per[start] = (sc, d)
            (scm, sclo, schi), (dm, dlo, dhi) = _ci(sc), _ci(d)
            rows.append({"iters": iters, "start": start, "sc": [scm, sclo, schi], "mrstft": [dm, dlo, dhi], "seconds": secs})
            print(f"| {iters} | {start} | {scm:.4f} [{sclo:.4f}, {schi:.4f}] | {dm:.4f} [{dlo:.4f}, {dhi:.4f}] | {secs:.1f} |")
        dsc, dmr = _ci(per["physics"][0] - per["random"][0]), _ci(per["physics"][1] - per["random"][1])
        verdict = lambda c: "tie" if c[1] <= 0 <= c[2] else ("physics better" if c[2] < 0 else "random better")  # noqa: E731
        rows.append({"iters": iters, "start": "physics - random", "sc": list(dsc), "mrstft": list(dmr)})
        print(f"| {iters} | physics − random | {dsc[0]:+.4f} [{dsc[1]:+.4f}, {dsc[2]:+.4f}] {verdict(dsc)} | "
              f"{dmr[0]:+.4f} [{dmr[1]:+.4f}, {dmr[2]:+.4f}] {verdict(dmr)} | |")
    if args.json:
        Path(args.json).write_text(json.dumps({"clips": n, "run": synth.diffusion.run_dir.name, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
