"""Stand-ins for upstream stage exports, so downstream stage tests need not train those stages."""

from __future__ import annotations

from pathlib import Path


def write_video_export(run_dir: Path, shard_root: Path, nu_dim: int, seed: int, producer: str) -> None:
    """nu / logits side tables for every split in the video stage's export format (physdiff.artifacts), marked finished.

    nu is a fixed random projection (seed 0) of the clip's material one-hot plus a little noise, so
    it carries the material as a trained encoder's features would; logits favour the true class.
    """
    import torch

    from physdiff.artifacts import ExportWriter, write_done
    from physdiff.data.labels import GREATEST_HITS_MATERIALS
    from physdiff.data.reader import make_loader

    k = len(GREATEST_HITS_MATERIALS)
    proj = torch.randn(k, nu_dim, generator=torch.Generator().manual_seed(0))  # (K, D): the fixed projection
    out = ExportWriter(run_dir, "video", feature_dim=nu_dim, producer=producer)
    from physdiff.data.layout import SPLITS

    for split in SPLITS:
        keys, labels = [], []
        for b in make_loader(shard_root, split, batch_size=8, mode="eval"):
            keys += list(b["key"])
            labels.append(b["material"])
        y = torch.nn.functional.one_hot(torch.cat(labels), k).float()  # (N, K)
        g = torch.Generator().manual_seed(seed + len(split))
        nu = y @ proj + 0.1 * torch.randn(len(keys), nu_dim, generator=g)  # (N, D)
        logits = 3 * y + 0.1 * torch.randn(len(keys), k, generator=g)  # (N, K)
        out.table(split, keys, {"nu": nu, "logits": logits}, {"producer": producer})
    write_done(run_dir, {"stage": "video", "exports": out.finish(), "producer": producer})
