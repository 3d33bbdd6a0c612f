"""Meta-learning tasks and support sets built from cell lines (shared by evaluation and serving).

A *task* is a small set of labelled lines. Two kinds:

* **subgroup tasks** (the honest protocol): a subgroup (lung histology, or tissue) is drawn with
  probability proportional to its number of training lines, then up to ``support_size`` of its
  training lines at random; REPTILE learns an initialisation from which a few SGD steps on such a
  set fit the subgroup.
* **line tasks** (the paper's protocol): each task is one line with its own SF2.

A *support set* is what a held-out line is adapted on: up to ``support_size`` labelled training
lines of its own subgroup, never the line itself.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.sf2.reptile import TaskBatch, TaskSampler

__all__ = ["line_task_sampler", "minmax", "stack_support", "subgroup_task_sampler",
           "support_indices"]


def minmax(x: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-column min and max over ``rows`` of ``x`` (all rows by default); a constant column
    gets max = min + 1 so scaling never divides by zero."""
    ref = x if rows is None else x[rows]
    lo, hi = ref.min(0), ref.max(0)
    hi = np.where(hi > lo, hi, lo + 1.0)
    return lo, hi


def subgroup_task_sampler(x: torch.Tensor, y: torch.Tensor, subgroup: np.ndarray,
                          train: np.ndarray, support_size: int) -> TaskSampler:
    """Sampler of subgroup tasks over the ``train`` lines (indices into ``x``/``y``)."""
    groups = {g: train[subgroup[train] == g] for g in np.unique(subgroup[train])}
    train_groups = subgroup[train]
    d = x.shape[1]

    def sample(rng: np.random.Generator, n_tasks: int) -> TaskBatch:
        xs = torch.zeros(n_tasks, support_size, d)
        ys = torch.zeros(n_tasks, support_size)
        ms = torch.zeros(n_tasks, support_size)
        for t in range(n_tasks):
            pool = groups[train_groups[rng.integers(len(train))]]
            pick = rng.choice(pool, size=min(support_size, len(pool)), replace=False)
            xs[t, : len(pick)] = x[pick]
            ys[t, : len(pick)] = y[pick]
            ms[t, : len(pick)] = 1.0
        return TaskBatch(xs, ys, ms)

    return sample


def line_task_sampler(x: torch.Tensor, y: torch.Tensor, train: np.ndarray) -> TaskSampler:
    """Sampler of one-line tasks (the paper's: each cell line is a task with one sample)."""

    def sample(rng: np.random.Generator, n_tasks: int) -> TaskBatch:
        pick = rng.choice(train, size=n_tasks, replace=n_tasks > len(train))
        return TaskBatch(x[pick][:, None, :], y[pick][:, None], torch.ones(n_tasks, 1))

    return sample


def support_indices(targets: np.ndarray, pool: np.ndarray, subgroup: np.ndarray,
                    support_size: int, rng: np.random.Generator) -> np.ndarray:
    """For each target line, up to ``support_size`` random ``pool`` lines of its subgroup.

    Returns:
        ``[len(targets), support_size]`` indices, padded with −1; a target never supports
        itself. A row of −1 means no labelled line of that subgroup is available.
    """
    out = np.full((len(targets), support_size), -1, dtype=np.int64)
    for i, t in enumerate(targets):
        candidates = pool[(subgroup[pool] == subgroup[t]) & (pool != t)]
        if candidates.size:
            pick = rng.choice(candidates, size=min(support_size, candidates.size), replace=False)
            out[i, : len(pick)] = pick
    return out


def stack_support(x: torch.Tensor, y: torch.Tensor,
                  support: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded support tensors: ``x [T, k, d]``, ``y [T, k]``, ``mask [T, k]`` from indices."""
    idx = torch.as_tensor(np.where(support >= 0, support, 0))
    mask = torch.as_tensor(support >= 0, dtype=torch.float32)
    return x[idx] * mask[..., None], y[idx] * mask, mask
