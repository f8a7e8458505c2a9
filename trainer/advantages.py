"""Advantage estimators and credit assignment: outcome-level, turn-level, planning-aware.

`compute_advantages(episodes, cfg)` returns one float32 array per episode, aligned with
`episode.token_ids`, zero wherever `loss_mask == 0`. Every estimator underneath is a
small pure function on numbers (rewards of one group, returns of one anchor group), so
each can be checked by hand; formulas and sources are in docs/ALGORITHMS.md.

Conventions (choices made here, stated once):
- A group is the episodes sharing `group_id` (the task key when it is empty).
- Group statistics use the unbiased std (ddof=1, as verl and TRL do) plus eps 1e-6.
  A group (or anchor group, or turn-index group) with a single member has no baseline:
  its advantage is 0.
- Outcome estimators use R = outcome_reward, or outcome + sum of turn rewards when
  `reward_source="total"`. W-REINFORCE / PSR / NSR use `episode.success` as the binary
  label (they are defined for correct/incorrect, whatever the reward scale).
- Turn-level estimators give each turn's sampled tokens that turn's advantage; sampled
  tokens outside any turn (none in well-formed episodes) get the episode-level one.
- `turn_norm` says what a turn is compared with: "index" (default) normalises turn k of
  each episode against turn k of the other episodes of its group, a time-step baseline
  that does not favour early turns merely for having more discounted reward ahead;
  "all" pools every turn of the group.
- HICRA: A' = A + alpha * |A| on planning tokens (trainer.planning), after span weights.
  Span weights generalise it: the advantage of tokens in think / tool-call / answer
  spans (tags included) is multiplied by the configured factor before HICRA; other
  sampled tokens (e.g. end-of-turn markers) keep factor 1.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tirgym.episode import Episode
from tirgym.errors import TirgymError

EPS = 1e-6
Estimator = Literal[
    "grpo", "drgrpo", "rloo", "wreinforce", "psr", "nsr", "turn_return", "mtgrpo", "gigpo"
]
OUTCOME_ESTIMATORS = ("grpo", "drgrpo", "rloo", "wreinforce", "psr", "nsr")
TURN_ESTIMATORS = ("turn_return", "mtgrpo", "gigpo")


class SpanWeights(BaseModel):
    """Advantage multipliers for the think, tool-call and answer spans of each turn."""

    model_config = ConfigDict(extra="forbid")
    think: float = 1.0
    tool_call: float = 1.0
    answer: float = 1.0

    @property
    def is_identity(self) -> bool:
        return self.think == self.tool_call == self.answer == 1.0


class AdvantageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    estimator: Estimator = "grpo"
    reward_source: Literal["outcome", "total"] = "outcome"
    """R of the outcome estimators and of GiGPO's episode level: outcome, or outcome + turn rewards."""
    gamma: float = Field(0.95, ge=0.0, le=1.0)
    """Discount over turns (turn_return, gigpo step returns)."""
    turn_norm: Literal["index", "all"] = "index"
    """turn_return / mtgrpo: normalise a turn against the same turn index in the group, or all turns."""
    turn_weight: float = 1.0
    """MT-GRPO lambda: A = A_outcome + turn_weight * A_turn."""
    gigpo_omega: float = 1.0
    gigpo_norm: Literal["mean_norm", "mean_std_norm"] = "mean_std_norm"
    wreinforce_lambda: float = Field(0.1, ge=0.0)
    hicra: bool = False
    hicra_alpha: float = Field(0.2, ge=0.0)
    hicra_scope: Literal["think", "all"] = "think"
    span_weights: SpanWeights = Field(default_factory=SpanWeights)


# ---------------------------------------------------------------------------------------
# Pure estimators on one group
# ---------------------------------------------------------------------------------------


def _arr(x: Sequence[float]) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def grpo(rewards: Sequence[float], eps: float = EPS) -> np.ndarray:
    """(R - mean) / (std + eps); a singleton group gets 0."""
    r = _arr(rewards)
    if r.size < 2:
        return np.zeros_like(r)
    return (r - r.mean()) / (r.std(ddof=1) + eps)


def drgrpo(rewards: Sequence[float]) -> np.ndarray:
    """R - mean (Dr. GRPO: no std division)."""
    r = _arr(rewards)
    return r - r.mean() if r.size >= 2 else np.zeros_like(r)


def rloo(rewards: Sequence[float]) -> np.ndarray:
    """R_i - mean of the other rewards of the group."""
    r = _arr(rewards)
    n = r.size
    if n < 2:
        return np.zeros_like(r)
    return r - (r.sum() - r) / (n - 1)


def wreinforce(correct: Sequence[bool], lam: float = 0.1) -> np.ndarray:
    """lambda for a correct sample, -1 for an incorrect one; no baseline."""
    c = np.asarray(correct, dtype=bool)
    return np.where(c, lam, -1.0).astype(np.float64)


def psr(correct: Sequence[bool]) -> np.ndarray:
    """Positive sample reinforcement only: +1 correct, 0 incorrect."""
    return np.asarray(correct, dtype=bool).astype(np.float64)


def nsr(correct: Sequence[bool]) -> np.ndarray:
    """Negative sample reinforcement only: 0 correct, -1 incorrect."""
    return -(~np.asarray(correct, dtype=bool)).astype(np.float64)


def discounted_returns(rewards: Sequence[float], gamma: float) -> np.ndarray:
    """G_k = sum_{j>=k} gamma^(j-k) r_j."""
    r = _arr(rewards)
    out = np.zeros_like(r)
    acc = 0.0
    for k in range(r.size - 1, -1, -1):
        acc = r[k] + gamma * acc
        out[k] = acc
    return out


def normalize_group(values: Sequence[float], std: bool = True, eps: float = EPS) -> np.ndarray:
    """v - mean (divided by std + eps when std); 0 for a singleton group."""
    v = _arr(values)
    if v.size < 2:
        return np.zeros_like(v)
    out = v - v.mean()
    return out / (v.std(ddof=1) + eps) if std else out


def normalize_ragged(
    rows: Sequence[Sequence[float]], by: Literal["index", "all"], std: bool = True
) -> list[np.ndarray]:
    """Normalise a ragged [episode][turn] table per turn index, or pooled over all turns."""
    rows = [_arr(r) for r in rows]
    out = [np.zeros_like(r) for r in rows]
    if by == "all":
        flat = np.concatenate(rows) if rows else np.zeros(0)
        norm = normalize_group(flat, std)
        i = 0
        for k, r in enumerate(rows):
            out[k] = norm[i : i + r.size]
            i += r.size
        return out
    width = max((r.size for r in rows), default=0)
    for t in range(width):
        who = [k for k, r in enumerate(rows) if r.size > t]
        norm = normalize_group([rows[k][t] for k in who], std)
        for k, a in zip(who, norm, strict=True):
            out[k][t] = a
    return out


def turn_return_advantages(
    turn_rewards: Sequence[Sequence[float]],
    outcomes: Sequence[float],
    gamma: float,
    by: Literal["index", "all"] = "index",
) -> list[np.ndarray]:
    """Per episode, per turn: discounted return of turn rewards (outcome added to the last
    turn's reward), normalised across the group (see `turn_norm`)."""
    returns = []
    for rs, out in zip(turn_rewards, outcomes, strict=True):
        r = _arr(rs).copy()
        if r.size:
            r[-1] += out
        returns.append(discounted_returns(r, gamma))
    return normalize_ragged(returns, by)


def mtgrpo_advantages(
    turn_rewards: Sequence[Sequence[float]],
    outcomes: Sequence[float],
    turn_weight: float = 1.0,
    by: Literal["index", "all"] = "index",
) -> list[np.ndarray]:
    """MT-GRPO: A(turn k of episode i) = A_out[i] + lambda * A_turn[i, k], with outcome
    and turn rewards normalised separately within the group."""
    a_out = grpo(outcomes)
    a_turn = normalize_ragged(turn_rewards, by)
    return [a_out[i] + turn_weight * a_turn[i] for i in range(len(a_turn))]


def gigpo_step_advantages(
    keys: Sequence[Sequence[str]], step_returns: Sequence[Sequence[float]], std: bool = True
) -> list[np.ndarray]:
    """GiGPO step level: returns normalised within anchor groups (steps with the same key,
    across all episodes of the group, repeats within one episode included)."""
    groups: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, ks in enumerate(keys):
        for k, key in enumerate(ks):
            groups[key].append((i, k))
    out = [np.zeros(len(ks)) for ks in keys]
    for members in groups.values():
        norm = normalize_group([step_returns[i][k] for i, k in members], std)
        for (i, k), a in zip(members, norm, strict=True):
            out[i][k] = a
    return out


def hicra(adv: np.ndarray, planning: np.ndarray, alpha: float = 0.2) -> np.ndarray:
    """A + alpha*|A| on planning tokens: more credit in successes, less blame in failures."""
    adv = np.asarray(adv)
    return np.where(np.asarray(planning, dtype=bool), adv + alpha * np.abs(adv), adv)


# ---------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------


def group_key(ep: Episode) -> str:
    return ep.group_id or ep.task_key


def group_indices(episodes: Sequence[Episode]) -> dict[str, list[int]]:
    """group key -> indices of its episodes, in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, ep in enumerate(episodes):
        groups.setdefault(group_key(ep), []).append(i)
    return groups


def episode_reward(ep: Episode, source: str = "outcome") -> float:
    return ep.total_reward if source == "total" else ep.outcome_reward


def has_void_turn(ep: Episode) -> bool:
    return any(t.action == "none" for t in ep.turns)


def filter_void_turns(episodes: Iterable[Episode]) -> list[Episode]:
    """Drop trajectories with a void turn (neither tool call nor answer; SimpleTIR)."""
    return [ep for ep in episodes if not has_void_turn(ep)]


def dynamic_sampling_keep(groups, reward_source: str = "outcome"):
    """DAPO dynamic sampling: drop groups whose rewards are all equal (no signal).

    Takes a list of groups (each a list of episodes) and returns the kept groups, or a
    flat list of episodes (grouped by group_id) and returns the kept episodes in order.
    """
    groups = list(groups)
    if groups and isinstance(groups[0], Episode):
        idx = group_indices(groups)
        keep = set()
        for members in idx.values():
            if _varies([groups[i] for i in members], reward_source):
                keep.update(members)
        return [ep for i, ep in enumerate(groups) if i in keep]
    return [g for g in groups if _varies(list(g), reward_source)]


def _varies(group: list[Episode], source: str) -> bool:
    r = [episode_reward(ep, source) for ep in group]
    return len(r) > 1 and max(r) - min(r) > 1e-12


# ---------------------------------------------------------------------------------------
# Episodes -> token advantages
# ---------------------------------------------------------------------------------------


def observation_key(ep: Episode, turn_index: int) -> str:
    """Anchor key of a turn: its state_key, else a hash of the tokens shown before it
    (the prompt for turn 0, the env reply since the previous turn otherwise)."""
    turn = ep.turns[turn_index]
    if turn.state_key:
        return "s:" + turn.state_key
    prev_end = ep.turns[turn_index - 1].end if turn_index > 0 else 0
    obs = ep.token_ids[prev_end : turn.start]
    digest = hashlib.sha1(np.asarray(obs, dtype=np.int64).tobytes()).hexdigest()
    return f"o:{turn_index == 0}:{digest}"


def _turn_rewards_with_outcome(ep: Episode) -> list[float]:
    r = list(ep.turn_rewards)
    if r:
        r[-1] += ep.outcome_reward
    return r


def _group_values(eps: list[Episode], cfg: AdvantageConfig) -> tuple[np.ndarray, list[np.ndarray]]:
    """(episode-level advantage, per-turn advantages) for the episodes of one group."""
    n = len(eps)
    est = cfg.estimator
    rewards = [episode_reward(ep, cfg.reward_source) for ep in eps]
    correct = [ep.success for ep in eps]
    no_turns = [np.zeros(0) for _ in eps]
    if est == "grpo":
        return grpo(rewards), no_turns
    if est == "drgrpo":
        return drgrpo(rewards), no_turns
    if est == "rloo":
        return rloo(rewards), no_turns
    if est == "wreinforce":
        return wreinforce(correct, cfg.wreinforce_lambda), no_turns
    if est == "psr":
        return psr(correct), no_turns
    if est == "nsr":
        return nsr(correct), no_turns
    outcomes = [ep.outcome_reward for ep in eps]
    turn_r = [ep.turn_rewards for ep in eps]
    if est == "turn_return":
        per_turn = turn_return_advantages(turn_r, outcomes, cfg.gamma, cfg.turn_norm)
        # Tokens outside turns fall back to the return of the whole episode.
        ep_level = normalize_group(
            [discounted_returns(_turn_rewards_with_outcome(ep), cfg.gamma)[:1].sum() for ep in eps]
        )
        return ep_level, per_turn
    if est == "mtgrpo":
        per_turn = mtgrpo_advantages(turn_r, outcomes, cfg.turn_weight, cfg.turn_norm)
        return grpo(outcomes), per_turn
    if est == "gigpo":
        std = cfg.gigpo_norm == "mean_std_norm"
        a_ep = normalize_group(rewards, std)
        keys = [[observation_key(ep, k) for k in range(len(ep.turns))] for ep in eps]
        rets = [discounted_returns(_turn_rewards_with_outcome(ep), cfg.gamma) for ep in eps]
        a_step = gigpo_step_advantages(keys, rets, std)
        return a_ep, [a_ep[i] + cfg.gigpo_omega * a_step[i] for i in range(n)]
    raise TirgymError(
        f"Unknown advantage estimator {est!r}; allowed: {', '.join(Estimator.__args__)}."
    )


def compute_advantages(
    episodes: Sequence[Episode],
    cfg: AdvantageConfig | None = None,
    *,
    tokenizer=None,
    grams=None,
    planning_masks: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """One float32 array per episode (len(token_ids)), zero where loss_mask == 0.

    HICRA (`cfg.hicra`) needs planning masks: pass `planning_masks` (one bool array per
    episode) or a `tokenizer` (and optionally `grams`, default: the built-in lexicon) to
    compute them. Non-identity span weights need the tokenizer too.
    """
    cfg = cfg or AdvantageConfig()
    episodes = list(episodes)
    ep_adv = np.zeros(len(episodes))
    turn_adv: list[np.ndarray] = [np.zeros(0)] * len(episodes)
    for members in group_indices(episodes).values():
        a_ep, a_turn = _group_values([episodes[i] for i in members], cfg)
        for j, i in enumerate(members):
            ep_adv[i] = a_ep[j]
            turn_adv[i] = a_turn[j]

    need_tok = (cfg.hicra and planning_masks is None) or not cfg.span_weights.is_identity
    if need_tok and tokenizer is None:
        raise TirgymError(
            "HICRA and span weights need the policy tokenizer: call compute_advantages(..., "
            "tokenizer=policy.tokenizer) or pass planning_masks."
        )
    if planning_masks is not None and len(planning_masks) != len(episodes):
        raise ValueError("planning_masks needs one mask per episode")

    if cfg.hicra and planning_masks is None:
        from tirgym.trainer.planning import as_grams

        grams = as_grams(grams)
    out = []
    for i, ep in enumerate(episodes):
        n = len(ep.token_ids)
        lm = np.asarray(ep.loss_mask, dtype=bool)
        if lm.size != n:
            raise ValueError(
                f"episode {ep.task_key}: loss_mask has {lm.size} entries, token_ids {n}"
            )
        adv = np.full(n, ep_adv[i], dtype=np.float64)
        for k, turn in enumerate(ep.turns):
            if k < turn_adv[i].size:
                adv[turn.start : turn.end] = turn_adv[i][k]
        if not cfg.span_weights.is_identity:
            adv *= _span_factor(ep, tokenizer, cfg.span_weights)
        if cfg.hicra:
            if planning_masks is not None:
                pm = np.asarray(planning_masks[i], dtype=bool)
            else:
                from tirgym.trainer.planning import planning_mask

                pm = planning_mask(ep, tokenizer, grams, scope=cfg.hicra_scope)
            adv = hicra(adv, pm, cfg.hicra_alpha)
        adv[~lm] = 0.0
        out.append(adv.astype(np.float32))
    return out


def _span_factor(ep: Episode, tokenizer, w: SpanWeights) -> np.ndarray:
    from tirgym.trainer.token_spans import SPAN_ANSWER, SPAN_THINK, SPAN_TOOL, span_labels

    labels = span_labels(ep, tokenizer)
    table = np.ones(4)
    table[SPAN_THINK], table[SPAN_TOOL], table[SPAN_ANSWER] = w.think, w.tool_call, w.answer
    return table[labels]
