"""Seeded trajectories of every game are pinned: a speed-up must not change a single
observation, reward, flag or info value.

Each game plays a few seeds with a fixed mix of turns (random moves, solver moves, several
moves at once, malformed and empty turns, think blocks) at each difficulty, and the whole
record (reset and every step, info dicts included, floats as their exact repr) is hashed.
The digests in data/trajectory_pins.json were taken before the step and reset paths were
optimised. Regenerate them only for an intended change of behaviour:
`python tests/envs/test_trajectory_pins.py --write`.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

import pytest

import tirgym
from tirgym.registry import env_ids

PINS = Path(__file__).parent / "data" / "trajectory_pins.json"
SEEDS = (0, 1, 7)
ODD_TURNS = [
    "no tags at all",
    "<answer></answer>",
    "<answer>zzz qqq</answer>",
    "<answer>1</answer><answer>2</answer>",
    "<think>unclosed <answer>1</answer>",
    '<tool_call>{"name": "python", "arguments": {"code": "1"}}</tool_call>',
]


def configs() -> list[tuple[str, dict]]:
    out = []
    for env_id in env_ids("game"):
        if env_id == "tirgym/GuessNumber-v0":
            out += [(env_id, {}), (env_id, {"low": 1, "high": 50, "max_turns": 7})]
            out.append((env_id, {"progress_reward": 0.5, "explain": True}))
            continue
        for level in ("easy", "medium", "hard"):
            out.append((env_id, {"difficulty": level}))
        out.append((env_id, {"difficulty": "easy", "step_cost": 0.01, "progress_reward": 0.5}))
    return out


def _turn(env, rng: random.Random, i: int) -> str:
    if i % 7 == 3:
        return ODD_TURNS[(i // 7) % len(ODD_TURNS)]
    if hasattr(env, "random_turn"):
        if i % 5 == 4 and hasattr(env, "solve"):
            return "<think>plan</think>" + env.solve()
        return env.random_turn(rng, 2 if i % 4 == 2 and env.moves_per_turn > 1 else 1)
    if i % 3 == 2:
        return env.solve()
    return f"<answer>{rng.randint(env.low - 2, env.high + 2)}</answer>"


def trajectory(env_id: str, kwargs: dict, seed: int, max_steps: int = 40) -> list:
    env = tirgym.make(env_id, **kwargs).unwrapped
    rng = random.Random(seed)
    obs, info = env.reset(seed=seed)
    record: list = [obs, info]
    for i in range(max_steps):
        out = env.step(_turn(env, rng, i))
        record.append(list(out))
        if out[2] or out[3]:
            break
    record.append(env.render())
    return record


def digest(record: list) -> str:
    text = json.dumps(record, sort_keys=True, default=repr, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def key(env_id: str, kwargs: dict, seed: int) -> str:
    return f"{env_id} {json.dumps(kwargs, sort_keys=True)} seed={seed}"


def current() -> dict[str, str]:
    return {key(e, kw, s): digest(trajectory(e, kw, s)) for e, kw in configs() for s in SEEDS}


@pytest.mark.parametrize(
    "env_id,kwargs", configs(), ids=[f"{e[7:]}-{json.dumps(k)}" for e, k in configs()]
)
def test_seeded_trajectories_are_unchanged(env_id, kwargs):
    pins = json.loads(PINS.read_text())
    for seed in SEEDS:
        k = key(env_id, kwargs, seed)
        assert k in pins, f"no pin for {k}"
        assert digest(trajectory(env_id, kwargs, seed)) == pins[k], k


def test_every_game_config_is_pinned():
    pins = json.loads(PINS.read_text())
    assert set(pins) == {key(e, kw, s) for e, kw in configs() for s in SEEDS}


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    PINS.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {PINS}")
