"""The nu -> mu retrieval index: round trip on disk, exact chunked k-NN, deterministic ties, bad input."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from physdiff.errors import DataError
from physdiff.retrieval import build_index, load_index, log_index_to_mlflow, manifest_path, query, retrieve


def _brute_force(keys: torch.Tensor, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: exact |q - key| for every pair (torch.cdist without the GEMM trick), stable sort."""
    d = torch.cdist(q, keys, compute_mode="donot_use_mm_for_euclid_dist")  # (B, N)
    dist, idx = torch.sort(d, dim=1, stable=True)  # ties -> lower index first
    return dist[:, :k], idx[:, :k]


@pytest.fixture()
def small_index(tmp_path):
    g = torch.Generator().manual_seed(0)
    nu = torch.randn(500, 32, generator=g)  # (N, Dk)
    mu = torch.randn(500, 16, generator=g)  # (N, Dv)
    clips = [f"video{i // 10:03d}/hit{i % 10}" for i in range(500)]
    manifest = {"diffusion_run_id": "abc123", "data_manifest_hash": "deadbeef", "preset": "tiny"}
    path = tmp_path / "index" / "index.safetensors"
    index = build_index(nu, mu, clips, manifest, path)
    return index, nu, mu, clips, path


def test_round_trip_and_exact_key(small_index):
    index, nu, mu, clips, path = small_index
    assert path.is_file() and manifest_path(path).is_file()
    man = json.loads(manifest_path(path).read_text())
    for key, val in {"diffusion_run_id": "abc123", "data_manifest_hash": "deadbeef", "count": 500, "key_dim": 32, "value_dim": 16, "preset": "tiny"}.items():
        assert man[key] == val
    assert man["created"] and len(man["sha256"]) == 64 and man["metric"] == "euclidean"

    loaded = load_index(path, verify_hash=True)
    assert torch.equal(loaded.keys, nu) and torch.equal(loaded.values, mu) and loaded.clip_keys == clips
    # A training nu must retrieve itself, at distance exactly 0, with its own mu and clip key.
    rows = torch.tensor([0, 7, 123, 499])
    vals, dist, idx = retrieve(loaded, nu[rows], k=3, chunk_size=64)
    assert idx[:, 0].tolist() == rows.tolist()
    assert torch.all(dist[:, 0] == 0)
    assert torch.equal(vals[:, 0], mu[rows])
    assert [loaded.clip_keys[i] for i in idx[:, 0].tolist()] == [clips[i] for i in rows.tolist()]
    assert torch.all(dist[:, 1:] > 0) and torch.all(dist[:, 1:] >= dist[:, :-1])


@pytest.mark.parametrize("chunk_size,query_batch,k", [(37, 7, 1), (128, 1000, 5), (10_000, 3, 10), (1, 64, 3)])
def test_chunked_equals_brute_force(chunk_size, query_batch, k):
    g = torch.Generator().manual_seed(1)
    keys = torch.randn(3001, 24, generator=g)  # odd N: last chunk is partial
    q = torch.randn(64, 24, generator=g)
    dist, idx = query(keys, q, k=k, chunk_size=chunk_size, query_batch=query_batch)
    rdist, ridx = _brute_force(keys, q, k)
    assert dist.shape == idx.shape == (64, k)
    assert torch.equal(idx, ridx)
    torch.testing.assert_close(dist, rdist, rtol=1e-5, atol=1e-5)


def test_ties_are_deterministic_lowest_index_first():
    # Small integer grid points: many keys at exactly the same distance (GEMM exact on small ints).
    g = torch.Generator().manual_seed(2)
    keys = torch.randint(-2, 3, (2000, 3), generator=g).float()  # (N, 3), about 16 copies of each point
    q = torch.tensor([[0.0, 0.0, 0.0], [1.0, -1.0, 2.0], [0.5, 0.5, 0.5]])
    for chunk in (50, 333, 4096):
        dist, idx = query(keys, q, k=20, chunk_size=chunk)
        rdist, ridx = _brute_force(keys, q, 20)
        assert torch.equal(idx, ridx), f"chunk {chunk}"
        torch.testing.assert_close(dist, rdist)
    # Exact duplicates of a random (non-integer) key, in different chunks: lowest row wins,
    # then the next copies in row order.
    keys = torch.randn(1000, 16, generator=g)
    for r in (905, 17, 512):
        keys[r] = keys[300]
    dist, idx = query(keys, keys[300:301] + 1e-3, k=4, chunk_size=100)
    assert idx[0].tolist() == [17, 300, 512, 905]
    assert torch.all(dist[0] == dist[0, 0])


def test_query_follows_the_query_device_and_index_to():
    g = torch.Generator().manual_seed(3)
    keys = torch.randn(100, 8, generator=g)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dist, idx = query(keys, keys[:5].to(dev), k=2)
    assert dist.device.type == idx.device.type == torch.device(dev).type
    assert idx[:, 0].cpu().tolist() == [0, 1, 2, 3, 4]


def test_bad_input_is_a_clear_error(small_index, tmp_path):
    index, nu, mu, clips, path = small_index
    with pytest.raises(ValueError, match="k must be in"):
        query(index, nu[:2], k=501)
    with pytest.raises(ValueError, match="query needs"):
        query(index, torch.randn(2, 31))
    with pytest.raises(DataError, match="NaN"):
        query(index, torch.full((1, 32), float("nan")))
    with pytest.raises(ValueError, match="missing"):
        build_index(nu, mu, clips, {"diffusion_run_id": "x"}, tmp_path / "i.safetensors")
    with pytest.raises(ValueError, match="unique"):
        build_index(nu[:2], mu[:2], ["a", "a"], {"diffusion_run_id": "x", "data_manifest_hash": "y"}, tmp_path / "i.safetensors")
    with pytest.raises(DataError, match="NaN"):
        bad = nu.clone()
        bad[3, 3] = float("inf")
        build_index(bad, mu, clips, {"diffusion_run_id": "x", "data_manifest_hash": "y"}, tmp_path / "i.safetensors")
    # Truncated file: detected by the hash check, and unreadable without it.
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="sha256"):
        load_index(path, verify_hash=True)
    with pytest.raises(DataError, match=str(path.name)):
        load_index(path)
    with pytest.raises(DataError, match="not found"):
        load_index(tmp_path / "missing.safetensors")


def test_log_to_mlflow_and_tolerate_failure(small_index, tmp_path):
    from mlflow.tracking import MlflowClient

    index, nu, mu, clips, path = small_index
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("retrieval-test", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(exp)
    assert log_index_to_mlflow(path, run.info.run_id, tracking_uri=uri)
    names = sorted(a.path for a in client.list_artifacts(run.info.run_id, "index"))
    assert names == ["index/index.json", "index/index.safetensors"]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert not log_index_to_mlflow(path, "no-such-run", tracking_uri=uri)
    assert any("could not log retrieval index" in str(x.message) for x in w)


# ----------------------------------------------------------------------------- exactness of cdist + topk


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("margin", [0, 8])
def test_bitwise_equal_to_brute_force_on_both_backends(backend, margin):
    if backend == "faiss":
        pytest.importorskip("faiss")
    g = torch.Generator().manual_seed(5)
    keys = torch.randn(2500, 40, generator=g)
    keys[1700:1720] = keys[33]  # a block of 21 duplicates: ties across the candidate cut for k = 12
    q = torch.cat([torch.randn(50, 40, generator=g), keys[33:34] + 1e-4, keys[:5]])
    for k in (1, 12):
        dist, idx = query(keys, q, k=k, chunk_size=300, query_batch=17, rerank_margin=margin, backend=backend)
        rdist, ridx = _brute_force(keys, q, k)
        assert torch.equal(idx, ridx), (backend, margin, k)
        assert torch.equal(dist, rdist)  # the same direct float32 distance, bit for bit


def test_near_ties_the_matmul_path_gets_wrong_are_exact():
    # Keys far from the origin, differing by 1e-3: |q|^2 + |k|^2 - 2 q.k cancels ~7 digits, so the
    # GEMM distances that torch.cdist's fast path ranks by are mostly rounding noise.
    g = torch.Generator().manual_seed(6)
    centre = torch.full((64,), 300.0)
    keys = centre + 1e-3 * torch.randn(4000, 64, generator=g)  # (N, D)
    q = centre + 1e-3 * torch.randn(32, 64, generator=g)  # (B, D)
    rdist, ridx = _brute_force(keys, q, 5)
    naive = torch.cdist(q, keys, compute_mode="use_mm_for_euclid_dist").topk(5, dim=1, largest=False).indices
    assert (naive != ridx).float().mean() > 0.5  # the hazard is real on this data
    dist, idx = query(keys, q, k=5, chunk_size=1000)
    assert torch.equal(idx, ridx) and torch.equal(dist, rdist)


def test_tf32_setting_does_not_change_results():
    g = torch.Generator().manual_seed(7)
    keys, q = torch.randn(3000, 32, generator=g), torch.randn(20, 32, generator=g)
    ref = query(keys, q, k=4)
    prev = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        got = query(keys, q, k=4)
        assert torch.get_float32_matmul_precision() == "medium"  # restored to the caller's setting
    finally:
        torch.set_float32_matmul_precision(prev)
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])


def test_faiss_backend_caches_its_index_and_is_optional(small_index, monkeypatch):
    import sys

    from physdiff.errors import PhysdiffError

    index, nu, mu, clips, path = small_index
    if "faiss" in sys.modules or _has_faiss():
        d1, i1 = query(index, nu[:9] + 0.01, k=3, backend="faiss")
        cached = index._search_cache["index"]
        d2, i2 = query(index, nu[:9] + 0.01, k=3, backend="faiss")
        assert index._search_cache["index"] is cached and torch.equal(i1, i2)
        assert torch.equal(i1, query(index, nu[:9] + 0.01, k=3)[1])
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if not installed: import faiss raises ImportError
    with pytest.raises(PhysdiffError, match="pip install faiss-cpu"):
        query(index, nu[:2], k=1, backend="faiss")
    with pytest.raises(ValueError, match="backend"):
        query(index, nu[:2], k=1, backend="annoy")
    assert query(index, nu[:2], k=1)[1][:, 0].tolist() == [0, 1]  # the default needs no faiss


def _has_faiss() -> bool:
    from physdiff.retrieval.search import faiss_available

    return faiss_available()


def test_empty_query_batch():
    keys = torch.randn(10, 4)
    dist, idx = query(keys, torch.empty(0, 4), k=3)
    assert dist.shape == idx.shape == (0, 3) and idx.dtype == torch.long
