"""The statistics of material_modes.md, computed on the world's own objects (for calibration and docs).

Objects are drawn as the site catalogue draws them: a kind of the material (a wall, a mug, a railing)
with the probability that the world strikes that kind (:func:`physdiff.world.sites.kind_shares`), then
its family, size and damping from the kind. Per object, the 10 strongest modes of a strike at the
reference velocity are kept (the measured files hold ~10 fitted modes per object); percentiles weight
every object equally, as in the table.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from physdiff.world.materials import MATERIALS, V_REF
from physdiff.world.objects import KINDS
from physdiff.world.sites import kind_shares
from physdiff.world.sound import sample_object, strike_modes


def _weighted_percentiles(values: list[np.ndarray], q: tuple[float, ...]) -> list[float]:
    v = np.concatenate(values)
    w = np.concatenate([np.full(x.size, 1.0 / x.size) for x in values])
    order = np.argsort(v)
    cw = np.cumsum(w[order]) / w.sum()
    return [float(v[order][np.searchsorted(cw, p / 100.0)]) for p in q]


def material_statistics(material: str, objects: int = 300, seed: int = 0, strongest: int = 10) -> dict[str, Any]:
    """Frequency and RT60 P10/P50/P90, onset-power spread, RT60 high/low ratio, f*RT60 cycles."""
    rng = np.random.default_rng([seed, sorted(MATERIALS).index(material)])
    shares = kind_shares(material)
    names = list(shares)
    kind_p = np.array([shares[k] for k in names])
    freqs, rt60s, spreads, ratios, cycles = [], [], [], [], []
    for _ in range(objects):
        kind = KINDS[names[int(rng.choice(len(names), p=kind_p))]]
        obj = sample_object(kind, rng)
        f, p, lam = strike_modes(obj, V_REF, rng)
        keep = np.argsort(p)[::-1][:strongest]
        f, p, rt = f[keep], p[keep], 60.0 / lam[keep]
        freqs.append(f)
        rt60s.append(rt)
        spreads.append(float(p.max() - p.min()))
        o = np.argsort(f)
        half = f.size // 2
        ratios.append(float(np.median(rt[o][half:]) / np.median(rt[o][:half])))
        cycles.append(f * rt)
    return {
        "freq": _weighted_percentiles(freqs, (10, 50, 90)),
        "rt60": _weighted_percentiles(rt60s, (10, 50, 90)),
        "spread": float(np.median(spreads)),
        "rt60_ratio": float(np.median(ratios)),
        "cycles": float(np.median(np.concatenate(cycles))),
    }


def calibration_table(objects: int = 300, seed: int = 0) -> list[dict[str, Any]]:
    """One row per material: the measured targets beside the world's statistics."""
    rows = []
    for name, spec in MATERIALS.items():
        s = material_statistics(name, objects, seed)
        rows.append({"material": name, "target_freq": spec.target_freq, "freq": s["freq"],
                     "target_rt60": spec.target_rt60, "rt60": s["rt60"], "target_spread": spec.target_spread,
                     "spread": s["spread"], "target_rt60_ratio": spec.target_rt60_ratio,
                     "rt60_ratio": s["rt60_ratio"], "cycles": s["cycles"]})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: 'target -> world' for each statistic."""
    lines = ["| material | freq P10/P50/P90 Hz (measured → world) | RT60 P10/P50/P90 s (measured → world) "
             "| power spread dB | RT60 hi/lo ratio |", "|---|---|---|---|---|"]
    for r in rows:
        tf = "/".join(f"{x:.0f}" for x in r["target_freq"])
        wf = "/".join(f"{x:.0f}" for x in r["freq"])
        tr = "/".join(f"{x:.3f}" for x in r["target_rt60"])
        wr = "/".join(f"{x:.3f}" for x in r["rt60"])
        lines.append(f"| {r['material']} | {tf} → {wf} | {tr} → {wr} | {r['target_spread']:.0f} → {r['spread']:.0f} "
                     f"| {r['target_rt60_ratio']:.2f} → {r['rt60_ratio']:.2f} |")
    return "\n".join(lines)
