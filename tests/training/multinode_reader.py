"""One rank of a multi-node read: the prior stage's own training batches, recorded as JSON.

    torchrun --nnodes=2 --nproc_per_node=1 --rdzv_backend=c10d --rdzv_endpoint=127.0.0.1:PORT \\
        tests/training/multinode_reader.py OUT_DIR EPOCHS section.key=value ...

Each rank takes its rank and world size from the engine's own Accelerator (``make_accelerator``: the
global rank, as the engine does), asks the prior recipe for its training batches the way the engine
does (``recipe.train_batches(cfg, epoch, rank, world)``) and writes ``rank<R>.json``: its rank, the
node it ran on (``PHYSDIFF_TEST_NODE``, set per node launch), the keys it read per epoch, the shards
its loader owns, and every rank's batch count (all-gathered: a rank short of batches would hang DDP).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def main() -> None:
    from physdiff.config import resolve_config
    from physdiff.stages import get_recipe
    from physdiff.training.distributed import make_accelerator

    out, epochs, overrides = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    acc = make_accelerator("no", cpu=True)
    rank, world = acc.process_index, acc.num_processes
    cfg = resolve_config("debug", overrides)
    recipe = get_recipe("prior")
    recipe.setup(cfg, rank, world)
    nb = recipe.num_train_batches(cfg, world)
    keys: list[list[str]] = []
    for epoch in range(epochs):
        seen: list[str] = []
        for batch in recipe.train_batches(cfg, epoch, rank, world):
            seen += batch["key"]
            t = torch.ones(1)
            dist.all_reduce(t)  # one collective per batch, as a DDP step
        keys.append(seen)
    owned = recipe.loader(cfg, "train", "train", 0, rank, world, nb).shard_names()
    counts = [torch.zeros(1, dtype=torch.long) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([sum(len(k) for k in keys)]))
    record = {"rank": rank, "world": world, "node": os.environ.get("PHYSDIFF_TEST_NODE"),
              "group_rank": os.environ.get("GROUP_RANK"), "local_rank": os.environ.get("LOCAL_RANK"),
              "batches_per_epoch": nb, "keys": keys, "shards": owned, "all_counts": [int(c) for c in counts]}
    (out / f"rank{rank}.json").write_text(json.dumps(record))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
