"""Run under torchrun (gloo): each rank reads a split in eval and train mode and writes what it saw as JSON.

    torchrun --standalone --nproc_per_node=2 tests/data/ddp_reader.py SHARD_ROOT OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from physdiff.data.reader import make_loader


def main() -> None:
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    seen = {}
    for split in ("train", "test"):
        ev = make_loader(root, split, batch_size=2, mode="eval", num_workers=2)
        seen[split] = [k for b in ev for k in b["key"]]
    tr = make_loader(root, "train", batch_size=2, mode="train", num_workers=2, seed=1, epoch=0, batches_per_epoch=3)
    n = 0
    for b in tr:
        n += 1
        # a DDP-like collective per step: a rank that ran out of batches would hang here
        t = torch.tensor([b["audio"].shape[0]], dtype=torch.float32)
        dist.all_reduce(t)
    counts = torch.tensor([n])
    gathered = [torch.zeros(1, dtype=torch.long) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, counts)
    (out / f"rank{rank}.json").write_text(json.dumps({"eval": seen, "train_batches": n, "len": len(tr),
                                                      "all_counts": [int(g) for g in gathered]}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
