"""Figures of the synthetic world: contact sheets of frames, a spectrogram sheet per material, recurring objects.

    physdiff sheets --out docs/img           # world_frames.png, world_spectrograms.png, world_objects.png (python shards/world_sheets.py)
    physdiff sheets --out docs/img --table   # also prints the calibration table (docs/synthetic_world.md)

It generates a small world (seed 0, the default catalogue) in a temporary folder with the real entry
point's code, decodes the mp4 at each annotated hit (PyAV) and reads the wav (soundfile), so the
figures show the files.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import av
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import physdiff  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP)
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from scipy import signal  # noqa: E402

from physdiff.data.labels import PAPER_MATERIALS  # noqa: E402
from physdiff.errors import run_cli  # noqa: E402
from physdiff.world import WorldConfig, generate_world  # noqa: E402
from physdiff.world.stats import calibration_table, format_table  # noqa: E402



def decode_frames(path: Path) -> np.ndarray:
    """All frames of an mp4 as (N, H, W, 3) uint8."""
    from physdiff.data.media import SWS_THREADS

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24", threads=SWS_THREADS) for f in c.decode(video=0)])


def collect(world_dir: Path, per_material: int) -> tuple[dict[str, list], dict[str, list]]:
    """(material -> [(frame at contact, 0.5 s of audio from the onset, sample rate, event truth)], one example
    per object for variety; object id -> the same, one example per video that struck it)."""
    out: dict[str, list] = {m: [] for m in PAPER_MATERIALS}
    by_object: dict[str, list] = {}
    seen: set[str] = set()
    for truth_path in sorted(world_dir.glob("*_physics.json")):
        truth = json.loads(truth_path.read_text())
        vid = truth["id"]
        frames = decode_frames(world_dir / f"{vid}_denoised.mp4")
        audio, sr = sf.read(str(world_dir / f"{vid}_denoised.wav"), dtype="float32")
        fps = truth["fps"][0] / truth["fps"][1]
        in_video: set[str] = set()
        for ev in truth["events"]:
            m = ev["material"]
            if ev["action"] != "hit" or ev["reaction"] != "static" or ev["label"] != m:
                continue
            k = min(int(round(ev["time"] * fps)), len(frames) - 1)
            s = int(round(ev["time"] * sr))
            sample = (frames[k], audio[s:s + sr // 2], sr, {**ev, "video": vid, "scene": truth["site"]["scene"]})
            if ev["object_id"] not in in_video:
                in_video.add(ev["object_id"])
                by_object.setdefault(ev["object_id"], []).append(sample)
            if len(out[m]) < per_material and ev["object_id"] not in seen:
                seen.add(ev["object_id"])
                out[m].append(sample)
    return out, by_object


def objects_sheet(by_object: dict[str, list], path: Path, rows: int, cols: int) -> None:
    """Recurrence: each row one object of the catalogue, its frame at contact and spectrogram in several videos."""
    recurring = sorted(by_object.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    chosen, materials = [], set()
    for oid, samples in recurring:  # the most-filmed objects, one material per row while possible
        if len(samples) >= 2 and samples[0][3]["material"] not in materials:
            chosen.append((oid, samples))
            materials.add(samples[0][3]["material"])
        if len(chosen) == rows:
            break
    fig, axes = plt.subplots(len(chosen), 2 * cols, figsize=(2 * cols * 1.5, len(chosen) * 1.5), squeeze=False)
    for r, (oid, samples) in enumerate(chosen):
        for c in range(cols):
            ax_f, ax_s = axes[r, 2 * c], axes[r, 2 * c + 1]
            for ax in (ax_f, ax_s):
                ax.set_xticks([])
                ax.set_yticks([])
            if c >= len(samples):
                ax_f.axis("off")
                ax_s.axis("off")
                continue
            frame, clip, sr, ev = samples[c]
            ax_f.imshow(frame)
            ax_f.set_title(ev["video"][5:16], fontsize=5)
            f, t, z = signal.stft(clip[: sr // 4], sr, nperseg=2048, noverlap=2048 - 256)
            db = 20 * np.log10(np.abs(z) + 1e-9)
            keep = f <= 20000
            ax_s.pcolormesh(t, f[keep] / 1000, db[keep], vmin=db.max() - 80, vmax=db.max(), shading="auto", cmap="magma")
            ax_s.set_title(f"v={ev['velocity_mps']:.1f}", fontsize=5)
        ev = samples[0][3]
        axes[r, 0].set_ylabel(f"{oid}\n{ev['kind']} ({ev['material']})\n{ev['scene']}", fontsize=6)
    fig.suptitle("recurring objects: one object per row, struck in different videos (frame at contact, 0.25 s, 0-20 kHz)",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def contact_sheet(samples: dict, path: Path, cols: int) -> None:
    fig, axes = plt.subplots(len(PAPER_MATERIALS), cols, figsize=(cols * 1.6, len(PAPER_MATERIALS) * 1.6))
    for r, m in enumerate(PAPER_MATERIALS):
        for c in range(cols):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(samples[m]):
                frame, _, _, ev = samples[m][c]
                ax.imshow(frame)
                ax.set_title(f"{ev['kind']}, {ev['scene']}", fontsize=6)
        axes[r, 0].text(-0.1, 0.5, m, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=9)
    fig.suptitle("synthetic world: the frame at contact, per material", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def spectrogram_sheet(samples: dict, path: Path, cols: int) -> None:
    fig, axes = plt.subplots(len(PAPER_MATERIALS), cols, figsize=(cols * 2.2, len(PAPER_MATERIALS) * 1.4))
    for r, m in enumerate(PAPER_MATERIALS):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(samples[m]):
                ax.axis("off")
                continue
            _, clip, sr, ev = samples[m][c]
            f, t, z = signal.stft(clip, sr, nperseg=2048, noverlap=2048 - 256)
            db = 20 * np.log10(np.abs(z) + 1e-9)
            keep = f <= 20000
            ax.pcolormesh(t, f[keep] / 1000, db[keep], vmin=db.max() - 80, vmax=db.max(), shading="auto", cmap="magma")
            ax.set_title(f"{ev['kind']}, {ev['room']}, v={ev['velocity_mps']:.1f}", fontsize=6)
        axes[r, 0].set_ylabel(m, fontsize=8)
    fig.suptitle("synthetic world: 0.5 s from each onset (0-20 kHz, 80 dB range)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="physdiff sheets", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/img", help="folder for the PNGs (default: docs/img)")
    ap.add_argument("--size", type=int, default=128, help="frame size of the sheet's world in px (default: 128)")
    ap.add_argument("--cols", type=int, default=5, help="columns of the contact sheet (default: 5)")
    ap.add_argument("--seed", type=int, default=0, help="the sheet world's seed (world.seed; default: 0)")
    ap.add_argument("--table", action="store_true", help="print the calibration table (markdown)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # 36 videos at the default catalogue's 12 sites: every site filmed 3 times, so objects recur
        world = WorldConfig(videos=36, hits_per_video=14, size=args.size, workers=2)
        generate_world(tmp, world, args.seed, progress=True)
        samples, by_object = collect(Path(tmp), args.cols)
    contact_sheet(samples, out / "world_frames.png", args.cols)
    spectrogram_sheet(samples, out / "world_spectrograms.png", args.cols)
    objects_sheet(by_object, out / "world_objects.png", rows=6, cols=3)
    print(f"wrote {out / 'world_frames.png'}, {out / 'world_spectrograms.png'} and {out / 'world_objects.png'}")
    if args.table:
        print(format_table(calibration_table()))
    return 0


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
