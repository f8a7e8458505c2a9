"""Expert demonstrations: solver episodes of a suite in the Episode format, for SFT."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tirgym.agents.rollout import rollout
from tirgym.agents.scripted import SolverPolicy
from tirgym.agents.types import Task
from tirgym.episode import append_jsonl
from tirgym.errors import TirgymError

log = logging.getLogger(__name__)


def make_demos(
    suite: str,
    out: str | Path,
    *,
    n: int = 16,
    tokenizer: Any = None,
    seed_start: int = 0,
    keep_failed: bool = False,
) -> dict[str, tuple[int, int]]:
    """Write solver episodes for every suite env with a `solve()`; returns {label: (kept, total)}.

    With a tokenizer, each episode is tokenized through the chat template (mask 1 on the
    assistant tokens); envs without a solver are skipped with a warning.
    """
    import tirgym
    from tirgym.agents.backends import _tokenizer

    s = tirgym.get_suite(suite)
    tok = _tokenizer(tokenizer)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("")
    stats: dict[str, tuple[int, int]] = {}
    for entry in s.envs:
        env = tirgym.make(entry.id, **entry.kwargs)
        has_solver = callable(getattr(env.unwrapped, "solve", None))
        env.close()
        if not has_solver:
            log.warning("demos: %s has no solver; skipped", entry.label)
            stats[entry.label] = (0, 0)
            continue
        tasks = [Task(entry.id, seed_start + i, dict(entry.kwargs), entry.name) for i in range(n)]
        eps = rollout(SolverPolicy(tok), tasks)
        kept = [e for e in eps if keep_failed or e.success]
        for e in kept:
            e.info["demo"] = "solver"
        append_jsonl(out, kept)
        stats[entry.label] = (len(kept), len(eps))
    if not any(total for _, total in stats.values()):
        raise TirgymError(f"No env in suite {suite!r} has a solver; nothing to demonstrate.")
    return stats
