"""The shard reader on real shards: batches, frames on demand, modes, corrupt shards, side tables."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from physdiff.data.labels import GREATEST_HITS_MATERIALS
from physdiff.data.reader import make_loader
from physdiff.data.sidetable import read_side_table, write_side_table
from physdiff.errors import DataError


def _all_keys(root: Path, split: str) -> list[str]:
    return [b for b in (k for batch in make_loader(root, split, batch_size=3, mode="eval") for k in batch["key"])]


def test_eval_batches_audio_only(gh_shards, debug_cfg) -> None:
    out, _ = gh_shards
    batches = list(make_loader(out, "train", batch_size=2, mode="eval"))
    keys = [k for b in batches for k in b["key"]]
    assert len(keys) == len(set(keys)) == 5
    b = batches[0]
    T, D = debug_cfg.audio.num_samples, debug_cfg.audio.n_fft // 2 + 1
    assert b["audio"].shape == (2, T) and b["audio"].dtype == torch.float32
    assert b["modes"].shape == (2, 3, D) and b["modes"].dtype == torch.float32
    assert b["material"].dtype == torch.long
    assert [GREATEST_HITS_MATERIALS[int(i)] for i in b["material"]] == [m["material"] for m in b["meta"]]
    assert "frames" not in b


def test_frames_on_demand(gh_shards) -> None:
    out, _ = gh_shards
    b = next(iter(make_loader(out, "test", batch_size=2, mode="eval", frames=True)))
    assert b["frames"].shape == (2, 22, 3, 32, 32) and b["frames"].dtype == torch.uint8
    for i, meta in enumerate(b["meta"]):  # grey level of frame 11 encodes the onset frame index
        assert abs(b["frames"][i, 11].float().mean().item() - 4 * meta["onset_frame"]) < 2.5


def test_eval_every_sample_once_across_ranks_and_workers(gh_shards) -> None:
    out, _ = gh_shards
    everything = sorted(_all_keys(out, "train"))
    seen = Counter()
    for rank in range(2):
        for k in (k for b in make_loader(out, "train", batch_size=2, mode="eval", num_workers=2, rank=rank, world_size=2)
                  for k in b["key"]):
            seen[k] += 1
    assert sorted(seen) == everything and set(seen.values()) == {1}


def test_train_fixed_batches_seeded(gh_shards) -> None:
    out, _ = gh_shards
    def keys(epoch: int, rank: int, workers: int) -> list[list[str]]:
        ld = make_loader(out, "train", batch_size=2, mode="train", seed=3, epoch=epoch, num_workers=workers,
                         batches_per_epoch=5, shuffle_buffer=4, rank=rank, world_size=2)
        got = [b["key"] for b in ld]
        assert len(got) == len(ld) == 5 and all(len(k) == 2 for k in got)
        return got
    a = keys(0, 0, 2)
    assert a == keys(0, 0, 2)  # same (seed, epoch, rank, workers) -> same stream
    assert a != keys(1, 0, 2) or a != keys(0, 1, 2)  # other epoch / rank -> another draw
    default = make_loader(out, "train", batch_size=2, mode="train")
    assert len(default) == 5 // 2 == len(list(default))


def test_corrupt_shard_error_or_counted_skip(gh_shards, tmp_path: Path) -> None:
    out, _ = gh_shards
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    man = json.loads((bad / "train" / "manifest.json").read_text())
    victim = bad / man["shards"][0]["name"]
    victim.write_bytes(victim.read_bytes()[:20000])  # truncated mid-sample
    with pytest.raises(DataError, match=victim.name):
        list(make_loader(bad, "train", batch_size=1, mode="eval"))
    ld = make_loader(bad, "train", batch_size=1, mode="eval", skip_corrupt=True)
    keys = [k for b in ld for k in b["key"]]
    assert ld.skip_count == 1 and victim.name in ld.skipped[0]
    assert len(keys) == man["num_samples"] - man["shards"][0]["count"]
    # garbage inside a member of an intact tar: the sample is corrupt (named, before the shard's hash
    # verdict), or skipped and counted; verified, its shard then fails its sha256 and is dropped whole
    shutil.copy(out / man["shards"][0]["name"], victim)
    victim2 = bad / man["shards"][1]["name"]
    raw = bytearray(victim2.read_bytes())
    flac_at = raw.find(b"fLaC")
    raw[flac_at : flac_at + 64] = b"\x00" * 64
    victim2.write_bytes(bytes(raw))
    for verify in ("shard", "off"):
        with pytest.raises(DataError, match="corrupt sample"):
            list(make_loader(bad, "train", batch_size=1, mode="eval", skip_corrupt=False, num_workers=0, verify=verify))
    ld = make_loader(bad, "train", batch_size=1, mode="eval", skip_corrupt=True, num_workers=2, verify="off")
    n = sum(len(b["key"]) for b in ld)
    assert ld.skip_count == 1 and "corrupt sample" in ld.skipped[0] and n == man["num_samples"] - 1
    ld = make_loader(bad, "train", batch_size=1, mode="eval", skip_corrupt=True, num_workers=2)
    n = sum(len(b["key"]) for b in ld)
    assert ld.skip_count == 2 and "corrupt sample" in ld.skipped[0] and "does not match its manifest" in ld.skipped[1]
    assert victim2.name in ld.skipped[1] and n == man["num_samples"] - man["shards"][1]["count"]


def test_side_table_join(gh_shards, tmp_path: Path) -> None:
    out, _ = gh_shards
    keys = sorted(_all_keys(out, "train"))
    gamma = np.arange(len(keys) * 4, dtype=np.float32).reshape(len(keys), 4)
    p = write_side_table(tmp_path / "prior.safetensors", keys, {"gamma": gamma, "w": torch.ones(len(keys), 4)},
                         {"stage": "prior"})
    t = read_side_table(p)
    assert t.keys == keys and t.meta == {"stage": "prior"} and t.arrays["gamma"].shape == (len(keys), 4)
    for b in make_loader(out, "train", batch_size=2, mode="eval", side_tables={"prior": p}):
        for i, k in enumerate(b["key"]):
            assert torch.equal(b["prior/gamma"][i], torch.from_numpy(gamma[keys.index(k)]))
        assert b["prior/w"].shape == (len(b["key"]), 4)
    short = write_side_table(tmp_path / "short.safetensors", keys[1:], {"gamma": gamma[1:]})
    with pytest.raises(DataError, match=f"{keys[0]}.*short.safetensors"):
        list(make_loader(out, "train", batch_size=8, mode="eval", side_tables={"prior": short}))
    with pytest.raises(DataError, match="expected"):
        write_side_table(tmp_path / "x.safetensors", keys, {"gamma": gamma[:2]})
