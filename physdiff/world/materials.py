"""Per-material modal statistics of the synthetic world, calibrated against measured struck objects.

Source of the targets: the modes that Traer, Cusimano & McDermott (DAFx 2019) fitted to recordings of
real struck objects, as shipped in TDW's PyImpact material data (summarised in
``shared/reference/material_modes.md``; the table is reproduced in docs/synthetic_world.md with the
statistics this module actually produces beside it).

Each object is a kind of thing made of a material (:mod:`physdiff.world.objects`: a wall, a mug, a
railing), which fixes its family of partial ratios and its size range; the material fixes the rest
(fundamental at the reference size, damping, contact hardness), and each strike draws a velocity.
The modes of one event then follow:

- frequencies  f_i = f1 * r_i, with r_i from the family (free bar, rectangular plate, ring/shell with
  split doublets, thick block, or the dense inharmonic set of soft layered objects) and
  f1 = f1_median * (size_ref / size)^size_exponent (a bigger object rings lower);
- decay (dB/s) lambda_i = D * ((1 - rho) + rho (f_i / f_c)^2) * (f_i / f_c)^(-kappa): Rayleigh damping
  (a mass-proportional term plus a stiffness-proportional term growing as f^2, weight rho), with
  D = 60 / RT60 of the object; kappa > 0 only for the soft proxies whose measured RT60 *grows* with
  frequency (carpet, paper);
- onset power p_i = level + 20 log10(v / v_ref) + 20 log10 G(f_i; tau) + shape_i, where G is the
  low-pass spectrum of a Hertzian contact force of duration tau = contact_ms * (v / v_ref)^(-1/5):
  harder materials and faster strikes give shorter contacts and brighter sounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from physdiff.data.labels import PAPER_MATERIALS

V_REF = 1.5  # m/s, a typical drumstick strike
SIZE_REF = 0.3  # m, the size at which f1 = f1_median
F_MIN, F_MAX = 60.0, 20000.0  # audible modes the world synthesises (20 kHz < 44.1 kHz Nyquist)


@dataclass(frozen=True)
class MaterialSpec:
    """Distributions of one material's objects (see the module docstring for the formulas)."""

    name: str
    f1_median: float  # Hz, fundamental at SIZE_REF
    f1_log_sd: float  # object-to-object spread of f1 (natural log) beyond size
    size_exponent: float  # f1 ~ size^-size_exponent
    n_modes: tuple[int, int]  # modes per object (inclusive range)
    rt60_median: float  # s, of an object's modes
    rt60_log_sd: float  # object-to-object spread (natural log)
    rayleigh_rho: float  # weight of the stiffness-proportional (f^2) damping term
    kappa: float  # extra decay slope (soft proxies: RT60 rising with frequency)
    shape_sd: float  # dB, mode-to-mode scatter of onset power (strike position, radiation)
    level_db: float  # dBFS of the strongest mode at V_REF, before the recording's gain
    contact_ms: float  # Hertzian contact duration at V_REF
    restitution: float  # stick rebound speed / strike speed (pictures)
    # Targets from the measured table (material_modes.md): P10/P50/P90 frequency (Hz), RT60 (s),
    # onset-power spread of an object's 10 strongest modes (dB), RT60 high/low-frequency-half ratio.
    target_freq: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))
    target_rt60: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))
    target_spread: float = 0.0
    target_rt60_ratio: float = 1.0


def _spec(name: str, **kw: object) -> MaterialSpec:
    return MaterialSpec(name=name, **kw)  # type: ignore[arg-type]


MATERIALS: dict[str, MaterialSpec] = {
    m.name: m
    for m in (
        _spec("glass", f1_median=1100.0, f1_log_sd=0.3, size_exponent=1.0, n_modes=(14, 26), rt60_median=0.10, rt60_log_sd=0.52,
              rayleigh_rho=0.05, kappa=0.0, shape_sd=10.8, level_db=-20.0, contact_ms=0.07, restitution=0.7,
              target_freq=(1810, 7207, 11841), target_rt60=(0.054, 0.101, 0.197), target_spread=27, target_rt60_ratio=0.88),
        _spec("wood", f1_median=1400.0, f1_log_sd=0.35, size_exponent=1.0, n_modes=(14, 28), rt60_median=0.085, rt60_log_sd=0.6,
              rayleigh_rho=0.07, kappa=0.0, shape_sd=10.8, level_db=-18.0, contact_ms=0.12, restitution=0.55,
              target_freq=(763, 3326, 9617), target_rt60=(0.050, 0.085, 0.225), target_spread=26, target_rt60_ratio=0.84),
        _spec("ceramic", f1_median=263.0, f1_log_sd=0.35, size_exponent=1.0, n_modes=(12, 24), rt60_median=0.178, rt60_log_sd=0.5,
              rayleigh_rho=0.5, kappa=0.0, shape_sd=11.5, level_db=-19.0, contact_ms=0.06, restitution=0.65,
              target_freq=(598, 2850, 11046), target_rt60=(0.089, 0.178, 0.486), target_spread=27, target_rt60_ratio=0.33),
        _spec("metal", f1_median=480.0, f1_log_sd=0.35, size_exponent=1.0, n_modes=(16, 32), rt60_median=0.153, rt60_log_sd=0.55,
              rayleigh_rho=0.08, kappa=0.0, shape_sd=10.8, level_db=-17.0, contact_ms=0.14, restitution=0.75,
              target_freq=(800, 2262, 6965), target_rt60=(0.073, 0.153, 0.327), target_spread=25, target_rt60_ratio=0.82),
        _spec("cloth", f1_median=1900.0, f1_log_sd=0.4, size_exponent=0.6, n_modes=(16, 30), rt60_median=0.064, rt60_log_sd=0.8,
              rayleigh_rho=0.0, kappa=0.03, shape_sd=19.0, level_db=-30.0, contact_ms=0.3, restitution=0.15,
              target_freq=(413, 2921, 6457), target_rt60=(0.036, 0.064, 0.295), target_spread=40, target_rt60_ratio=0.96),
        _spec("plastic", f1_median=635.0, f1_log_sd=0.35, size_exponent=1.0, n_modes=(12, 24), rt60_median=0.056, rt60_log_sd=0.6,
              rayleigh_rho=0.09, kappa=0.0, shape_sd=12.2, level_db=-21.0, contact_ms=0.25, restitution=0.5,
              target_freq=(731, 2755, 5259), target_rt60=(0.021, 0.056, 0.110), target_spread=33, target_rt60_ratio=0.80),
        _spec("drywall", f1_median=865.0, f1_log_sd=0.3, size_exponent=0.7, n_modes=(14, 26), rt60_median=0.059, rt60_log_sd=0.35,
              rayleigh_rho=0.12, kappa=0.0, shape_sd=19.0, level_db=-24.0, contact_ms=0.18, restitution=0.35,
              target_freq=(757, 2335, 6225), target_rt60=(0.033, 0.059, 0.088), target_spread=40, target_rt60_ratio=0.76),
        _spec("carpet", f1_median=2670.0, f1_log_sd=0.3, size_exponent=0.5, n_modes=(16, 30), rt60_median=0.075, rt60_log_sd=0.6,
              rayleigh_rho=0.0, kappa=0.35, shape_sd=18.5, level_db=-32.0, contact_ms=0.32, restitution=0.1,
              target_freq=(780, 2917, 5227), target_rt60=(0.042, 0.075, 0.210), target_spread=38, target_rt60_ratio=1.48),
        _spec("paper", f1_median=1300.0, f1_log_sd=0.4, size_exponent=0.8, n_modes=(14, 28), rt60_median=0.06, rt60_log_sd=0.8,
              rayleigh_rho=0.0, kappa=0.2, shape_sd=12.8, level_db=-27.0, contact_ms=0.28, restitution=0.25,
              target_freq=(781, 3658, 8139), target_rt60=(0.025, 0.060, 0.187), target_spread=31, target_rt60_ratio=1.24),
        _spec("rock", f1_median=2100.0, f1_log_sd=0.35, size_exponent=1.0, n_modes=(10, 20), rt60_median=0.09, rt60_log_sd=0.95,
              rayleigh_rho=0.04, kappa=0.0, shape_sd=12.2, level_db=-20.0, contact_ms=0.05, restitution=0.6,
              target_freq=(1374, 5602, 10599), target_rt60=(0.014, 0.099, 0.358), target_spread=32, target_rt60_ratio=0.93),
    )
}
if set(MATERIALS) != set(PAPER_MATERIALS):  # the world must cover exactly the paper's classes
    raise RuntimeError(f"world materials {sorted(MATERIALS)} != paper materials {sorted(PAPER_MATERIALS)}")

# Free-free beam: (beta_n / beta_1)^2 with beta_n L = 4.730, 7.853, 10.996, 14.137, then ~ (2n+1) pi / 2.
_BAR_BETA = np.array([4.730041, 7.853205, 10.995608, 14.137165] + [(2 * n + 1) * np.pi / 2 for n in range(5, 40)])


def family_ratios(family: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Partial ratios r_i >= 1 (sorted, length n) of one object of a family.

    bar: free-free Euler-Bernoulli beam bending modes, plus a weaker torsional series;
    plate: simply supported rectangular plate, f_mn ~ m^2 + (n / aspect)^2, for a random aspect ratio;
    shell: bending modes of a ring/bell, f_n ~ n (n^2 - 1) / sqrt(n^2 + 1), each split into a doublet by
    the object's asymmetry (the beating pairs of glasses and bowls), plus plate-like base modes;
    block: thick solid, sparse strongly inharmonic modes; soft: dense inharmonic modes (layered fabric,
    foam, paper), log-uniform over three octaves and a half.
    """
    if family == "bar":
        bend = (_BAR_BETA / _BAR_BETA[0]) ** 2
        tors = rng.uniform(1.6, 3.2) * np.arange(1, 40)
        r = np.concatenate([bend, tors])
    elif family == "plate":
        aspect = rng.uniform(1.0, 2.2)
        m, k = np.meshgrid(np.arange(1, 12), np.arange(1, 12))
        f = m**2 + (k / aspect) ** 2
        r = (f / f.min()).ravel()
    elif family == "shell":
        order = np.arange(2, 14)
        ring = order * (order**2 - 1) / np.sqrt(order**2 + 1)
        ring = ring / ring[0]
        split = 1.0 + rng.uniform(0.002, 0.015, ring.size)
        base = rng.uniform(1.3, 1.9) * np.arange(1, 12) ** 1.6
        r = np.concatenate([ring, ring * split, base])
    elif family == "block":
        r = np.concatenate([[1.0], np.exp(rng.uniform(np.log(1.2), np.log(9.0), n - 1))])
    elif family == "soft":
        r = np.concatenate([[1.0], np.exp(rng.uniform(0.0, np.log(11.0), n - 1))])
    else:
        raise ValueError(f"unknown partial-ratio family {family!r}")
    r = np.sort(r * np.exp(rng.normal(0.0, 0.006, r.size)))  # manufacturing detuning
    r = r / r[0]
    return r[:n]
