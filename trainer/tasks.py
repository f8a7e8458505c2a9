"""Task sampling from the env mix: weighted env choice, seeds from each entry's training range.

Every draw uses a fresh generator keyed by (seed, draw index), so the sampler's whole
state is one counter (the data position): a resumed run draws exactly the tasks the
uninterrupted run would have, and all ranks draw the same list and take their share.
"""

from __future__ import annotations

import numpy as np

from tirgym.agents.types import Task
from tirgym.registry import HELDOUT_SEED_BASE, get_suite
from tirgym.trainer.config import EnvEntry


def expand_mix(entries: list[EnvEntry]) -> list[EnvEntry]:
    """The mix with every suite entry replaced by its envs (each an entry with an env id);
    a suite shares its weight among its envs, and its envs take its seeds and kwargs."""
    out: list[EnvEntry] = []
    for e in entries:
        if e.id is not None:
            out.append(e)
            continue
        suite = get_suite(e.suite)
        total = sum(s.weight for s in suite.envs)
        for s in suite.envs:
            out.append(
                EnvEntry(
                    id=s.id,
                    kwargs={**s.kwargs, **e.kwargs},
                    name=s.name,
                    weight=e.weight * s.weight / total,
                    seeds=e.seeds,
                )
            )
    return out


class TaskSampler:
    def __init__(self, entries: list[EnvEntry], seed: int):
        self.entries = expand_mix(entries)
        for m in self.entries:
            assert m.seeds[1] <= HELDOUT_SEED_BASE, (
                "training seeds must stay below HELDOUT_SEED_BASE"
            )
        w = np.array([m.weight for m in self.entries], dtype=np.float64)
        self.probs = w / w.sum()
        self.seed = seed
        self.draws = 0

    def draw(self, n: int) -> list[Task]:
        """n tasks; advances the data position by one draw."""
        rng = np.random.default_rng([self.seed, self.draws])
        self.draws += 1
        which = rng.choice(len(self.entries), size=n, p=self.probs)
        tasks = []
        for i in which:
            m = self.entries[int(i)]
            s = int(rng.integers(m.seeds[0], m.seeds[1]))
            tasks.append(Task(m.id, s, dict(m.kwargs), m.name))
        return tasks

    def state_dict(self) -> dict[str, int]:
        return {"draws": self.draws, "seed": self.seed}

    def load_state_dict(self, d: dict[str, int]) -> None:
        self.draws = int(d["draws"])
