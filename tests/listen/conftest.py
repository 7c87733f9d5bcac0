"""Fixtures for the listening-study tests: real source videos and generate runs, built once per session."""

from __future__ import annotations

import pytest

from tests.listen.fixtures import make_generate_run, make_source_video

VARIANTS4 = ("ours", "video", "video_label", "video_spec")


@pytest.fixture(scope="session")
def listen_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Three test videos and four generate runs (ours, video, video_label, video_spec) over them; a fifth
    video only the ``ours`` run generated. Returns {"sources", "runs": {variant: run dir}, "root"}."""
    root = tmp_path_factory.mktemp("listen-runs")
    sources = {f"vid_{k:04d}": make_source_video(root / "world", f"vid_{k:04d}", seed=k) for k in range(3)}
    extra = {"vid_0099": make_source_video(root / "world", "vid_0099", seed=99)}
    runs = {}
    for v in VARIANTS4:
        runs[v] = make_generate_run(root / "runs" / f"generate-{v}-abc123", v,
                                    {**sources, **(extra if v == "ours" else {})})
    return {"sources": sources, "runs": runs, "root": root}
