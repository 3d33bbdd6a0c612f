"""engine.platform.executor: the same seeded torch jobs give identical results, in job order,
whichever executor runs them (in-process, local process pool, local Ray cluster)."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator

import pytest
import torch

from engine.platform.executor import (
    LocalExecutor,
    RayExecutor,
    SerialExecutor,
    make_executor,
    text_progress,
)

JOBS = [3, 0, 2, 1]
"""Seeds of the four training jobs (deliberately not sorted)."""


def train_tiny_mlp(seed: int) -> tuple[int, float, str]:
    """Train a 2-layer MLP for 50 Adam steps on a fixed synthetic regression set.

    The data are the same in every process (own generator, seed 0); the initial weights come
    from ``seed``. Returns ``(seed, final MSE loss, sha256 of the final weights' bytes)``.
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=gen)  # [64, 5]
    y = (x @ torch.randn(5, 1, generator=gen)).tanh() + 0.1 * torch.randn(64, 1, generator=gen)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = torch.tensor(0.0)
    for _ in range(50):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)  # scalar
        loss.backward()
        optimiser.step()
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.numpy().tobytes())
    return seed, loss.item(), digest.hexdigest()


def fail_on_two(seed: int) -> int:
    """A job that raises for seed 2."""
    if seed == 2:
        raise ValueError("job 2 failed")
    return seed


@pytest.fixture(scope="module")
def reference() -> list[tuple[int, float, str]]:
    """Results of the jobs run in-process."""
    with SerialExecutor() as executor:
        return executor.map(train_tiny_mlp, JOBS)


def _ray_descendants() -> set[int]:
    """Pids of live Ray processes started by this process (raylet, GCS, workers, ...)."""
    psutil = pytest.importorskip("psutil")
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            text = " ".join(child.cmdline()) + " " + child.name()
        except psutil.NoSuchProcess:
            continue
        if any(tag in text for tag in ("raylet", "gcs_server", "ray::", "/ray/")):
            found.add(child.pid)
    return found


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[RayExecutor]:
    """A local two-CPU Ray cluster for this module, shut down (no processes left) afterwards."""
    pytest.importorskip("ray")
    import ray

    if ray.is_initialized():  # pragma: no cover - another test left Ray running
        pytest.skip("Ray already initialised in this process")
    executor = RayExecutor(num_cpus=2)
    try:
        yield executor
    finally:
        executor.close()
    assert not ray.is_initialized()
    assert not _ray_descendants(), "Ray processes left behind after shutdown"


def test_serial_runs_in_job_order_and_reports_progress(
    reference: list[tuple[int, float, str]],
) -> None:
    assert [seed for seed, _, _ in reference] == JOBS
    assert len({digest for _, _, digest in reference}) == len(JOBS)  # seeds matter
    calls: list[tuple[int, int]] = []
    with SerialExecutor() as executor:
        again = executor.map(train_tiny_mlp, JOBS, progress=lambda d, t: calls.append((d, t)))
    assert again == reference
    assert calls == [(k, 4) for k in range(5)]


def test_serial_restores_torch_threads() -> None:
    before = torch.get_num_threads()
    SerialExecutor().map(train_tiny_mlp, [0])
    assert torch.get_num_threads() == before


def test_local_pool_matches_serial(reference: list[tuple[int, float, str]]) -> None:
    calls: list[tuple[int, int]] = []
    with LocalExecutor(2) as executor:
        results = executor.map(
            train_tiny_mlp, JOBS, progress=lambda d, t: calls.append((d, t)), desc="mlp"
        )
        assert executor.map(train_tiny_mlp, []) == []
    assert results == reference  # exactly equal floats and weights, in job order
    assert calls == [(k, 4) for k in range(5)]


def test_local_pool_propagates_job_errors() -> None:
    with LocalExecutor(2) as executor, pytest.raises(ValueError, match="job 2 failed"):
        executor.map(fail_on_two, [0, 1, 2, 3])


def test_local_pool_refuses_work_after_close() -> None:
    executor = LocalExecutor(1)
    executor.close()
    executor.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        executor.map(fail_on_two, [0])


def test_ray_matches_serial(
    ray_executor: RayExecutor, reference: list[tuple[int, float, str]]
) -> None:
    calls: list[tuple[int, int]] = []
    results = ray_executor.map(
        train_tiny_mlp, JOBS, progress=lambda d, t: calls.append((d, t)), desc="mlp"
    )
    assert results == reference  # exactly equal floats and weights, in job order
    assert calls == [(k, 4) for k in range(5)]


def test_ray_propagates_job_errors(ray_executor: RayExecutor) -> None:
    with pytest.raises(ValueError, match="job 2 failed"):
        ray_executor.map(fail_on_two, [0, 1, 2, 3])


def test_make_executor_kinds() -> None:
    assert isinstance(make_executor("serial"), SerialExecutor)
    assert isinstance(make_executor("local", n_workers=1), SerialExecutor)
    with make_executor("local", n_workers=2) as executor:
        assert isinstance(executor, LocalExecutor)
        assert executor.n_workers == 2
    with make_executor() as executor:
        assert isinstance(executor, LocalExecutor)
        assert executor.n_workers == (os.cpu_count() or 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "dask"}, "unknown executor kind 'dask'; expected one of serial, local, ray"),
        ({"kind": "Local"}, "unknown executor kind 'Local'"),
        ({"kind": "local", "n_workers": 0}, "n_workers must be >= 1"),
        ({"kind": "local", "address": "auto"}, "address is only used by the 'ray' executor"),
    ],
)
def test_make_executor_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_executor(**kwargs)


def test_ray_executor_rejects_num_cpus_with_address() -> None:
    with pytest.raises(ValueError, match="num_cpus applies only to a local Ray cluster"):
        RayExecutor(address="auto", num_cpus=2)


def test_text_progress_draws_in_place_and_ends_the_line() -> None:
    out = io.StringIO()
    progress = text_progress("grid", width=10, stream=out)
    for done in range(5):
        progress(done, 4)
    text = out.getvalue()
    assert text.startswith("\r[..........] 0/4 grid\r[##........] 1/4 grid")
    assert text.endswith("\r[##########] 4/4 grid\n")
    assert text.count("\n") == 1
