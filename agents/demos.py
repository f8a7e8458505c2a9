"""Expert demonstrations: solver episodes of a suite in the Episode format, for SFT."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tirgym.agents.rollout import rollout
from tirgym.agents.scripted import SolverPolicy
from tirgym.agents.types import RolloutLimits, Task
from tirgym.episode import Episode, append_jsonl
from tirgym.errors import TirgymError

log = logging.getLogger(__name__)


@dataclass
class DemoStats:
    """Per suite entry: episodes kept, episodes run, and why the others were dropped."""

    kept: int = 0
    total: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    """Reason -> count: `max_tokens` (the episode hit the token cap), `max_turns`,
    `unsolved` (the solver finished without winning), `error`, ..."""


def drop_reason(ep: Episode) -> str:
    if "error" in ep.info:
        return "error"
    return "unsolved" if ep.stop_reason in ("env_done", "lost") else ep.stop_reason


def make_demos(
    suite: str,
    out: str | Path,
    *,
    n: int = 16,
    tokenizer: Any = None,
    seed_start: int = 0,
    keep_failed: bool = False,
    max_total_tokens: int = 4096,
) -> dict[str, DemoStats]:
    """Write solver episodes for every suite env with a `solve()`; returns stats by label.

    With a tokenizer, each episode is tokenized through the chat template (mask 1 on the
    assistant tokens) and cut at `max_total_tokens`; a cut episode is not a win, so long
    games (hard mazes, 2048) need a larger cap. Envs without a solver are skipped with a
    warning.
    """
    import tirgym
    from tirgym.agents.backends import _tokenizer

    s = tirgym.get_suite(suite)
    tok = _tokenizer(tokenizer)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("")
    limits = RolloutLimits(max_total_tokens=max_total_tokens)
    stats: dict[str, DemoStats] = {}
    for entry in s.envs:
        env = tirgym.make(entry.id, **entry.kwargs)
        has_solver = callable(getattr(env.unwrapped, "solve", None))
        env.close()
        if not has_solver:
            log.warning("demos: %s has no solver; skipped", entry.label)
            stats[entry.label] = DemoStats()
            continue
        tasks = [Task(entry.id, seed_start + i, dict(entry.kwargs), entry.name) for i in range(n)]
        eps = rollout(SolverPolicy(tok), tasks, limits=limits)
        kept = [e for e in eps if keep_failed or e.success]
        for e in kept:
            e.info["demo"] = "solver"
        append_jsonl(out, kept)
        dropped = Counter(drop_reason(e) for e in eps if not (keep_failed or e.success))
        stats[entry.label] = DemoStats(len(kept), len(eps), dropped)
    if not any(st.total for st in stats.values()):
        raise TirgymError(f"No env in suite {suite!r} has a solver; nothing to demonstrate.")
    return stats
