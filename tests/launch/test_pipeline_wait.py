"""``--stage all --slurm --wait`` fails at the first failed job instead of waiting on its cancelled dependents.

With SLURM accounting off (the local cluster, many small sites) submitit cannot tell a job that SLURM cancelled
because its dependency failed from one still pending, so waiting only on the chain's last job hung until the
test timeout (seen in the Python 3.12 suite). The launcher now waits on every job in submission order.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from physdiff.config import resolve_config
from physdiff.launch.pipeline import pipeline_steps, submit_slurm


class _Job:
    """What submit_slurm reads of a submitit job: its id and ``result()`` (which raises for a failed job)."""

    def __init__(self, job_id: int, fails: bool, waited: list[int]) -> None:
        self.job_id, self.fails, self.waited = job_id, fails, waited

    def result(self) -> dict:
        self.waited.append(self.job_id)
        if self.fails:
            raise RuntimeError(f"job {self.job_id} failed")
        if self.job_id == 9999:
            raise AssertionError("waited on a job whose dependency had failed")
        return {}


def test_wait_stops_at_the_first_failed_job(tmp_path: Path) -> None:
    cfg = resolve_config("debug", [f"paths.data_root={tmp_path}", "tracking.enabled=false"])
    names = [s.name for s in pipeline_steps(cfg)]
    fail_at = names.index("prior")
    waited: list[int] = []
    submitted: list[tuple[str, list[str]]] = []

    def submit_step(args, step_cfg, stage, name, after):  # the launcher's signature
        submitted.append((name, list(after)))
        i = len(submitted) - 1
        job_id = 9999 if i == len(names) - 1 else 100 + i  # the last job: never to be waited on
        return SimpleNamespace(job=_Job(job_id, fails=(i == fail_at), waited=waited))

    with pytest.raises(RuntimeError, match=f"job {100 + fail_at} failed"):
        submit_slurm(SimpleNamespace(wait=True), cfg, submit_step)
    assert [n for n, _ in submitted] == names  # the whole chain was submitted first
    assert waited == [100 + i for i in range(fail_at + 1)]  # in order, up to the failed one, then stop
