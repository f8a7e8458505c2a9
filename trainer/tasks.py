"""Task sampling from the env mix: weighted env choice, seeds from each entry's training range.

Every draw uses a fresh generator keyed by (seed, draw index), so the sampler's whole
state is one counter (the data position): a resumed run draws exactly the tasks the
uninterrupted run would have, and all ranks draw the same list and take their share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tirgym.registry import HELDOUT_SEED_BASE, get_suite


@dataclass
class MixEntry:
    env_id: str
    kwargs: dict[str, Any]
    name: str | None
    weight: float
    seeds: tuple[int, int]

    @property
    def label(self) -> str:
        return self.name or self.env_id


def expand_mix(entries) -> list[MixEntry]:
    """Config EnvEntry list -> flat env entries; a suite shares its weight among its envs."""
    out: list[MixEntry] = []
    for e in entries:
        if e.id is not None:
            out.append(MixEntry(e.id, dict(e.kwargs), e.name, e.weight, tuple(e.seeds)))
            continue
        suite = get_suite(e.suite)
        total = sum(s.weight for s in suite.envs)
        for s in suite.envs:
            kw = {**s.kwargs, **e.kwargs}
            out.append(MixEntry(s.id, kw, s.name, e.weight * s.weight / total, tuple(e.seeds)))
    return out


class TaskSampler:
    def __init__(self, entries, seed: int):
        self.entries = expand_mix(entries)
        for m in self.entries:
            assert m.seeds[1] <= HELDOUT_SEED_BASE, (
                "training seeds must stay below HELDOUT_SEED_BASE"
            )
        w = np.array([m.weight for m in self.entries], dtype=np.float64)
        self.probs = w / w.sum()
        self.seed = seed
        self.draws = 0

    def draw(self, n: int) -> list:
        """n tasks (Task objects); advances the data position by one draw."""
        from tirgym.agents import Task

        rng = np.random.default_rng([self.seed, self.draws])
        self.draws += 1
        which = rng.choice(len(self.entries), size=n, p=self.probs)
        tasks = []
        for i in which:
            m = self.entries[int(i)]
            s = int(rng.integers(m.seeds[0], m.seeds[1]))
            tasks.append(Task(env_id=m.env_id, seed=s, kwargs=dict(m.kwargs), name=m.name))
        return tasks

    def state_dict(self) -> dict[str, int]:
        return {"draws": self.draws, "seed": self.seed}

    def load_state_dict(self, d: dict[str, int]) -> None:
        self.draws = int(d["draws"])
