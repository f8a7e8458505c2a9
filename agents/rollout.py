"""The rollout engine: (policy, tasks) -> token-exact Episodes, batched across episodes.

Two schedules, same episodes:
- continuous (backends with `open_stream`: hf, vllm): one decode loop over every live
  episode. An episode whose turn ends leaves the batch and its env step starts on a
  thread pool at once, while the others keep decoding; when the step is done the episode
  rejoins with only the env reply prefilled (its KV cache was kept). Env time hides
  behind generation and a straggler holds nobody.
- rounds (openai, text policies, or continuous=False): each round, every episode waiting
  for its next turn is generated in ONE backend call; env steps run on the thread pool
  and the engine waits for them only for a short gather window, so a slow env (a
  sandbox, a remote tool) makes only its own episode skip rounds while the rest go on.
Limits (turns, tokens, wall time) truncate an episode, which is recorded with its stop
reason; nothing waits forever on a hung env.

Token exactness: the prompt (mask 0) is the chat template's rendering of the system and
task messages; sampled ids are appended as sampled (mask 1, with their logprobs); env
replies are appended as chat-template deltas (mask 0). See `tirgym.agents.chat`.

Seeding: each episode's sampling is a pure function of (params.seed, task label, task
seed, sample index = Task.sample_index + index in its group): every turn's generate call
gets per-row seeds derived from that and the turn index (`SamplingParams.seeds`), so an
episode samples the same tokens whatever batch it runs in (resumed evals, refilled batches).

Text-level policies (`TextPolicy`: solvers, replay, chat APIs) go through the same loop;
their turn texts are tokenized when the policy has a tokenizer (mask 1 on the assistant
tokens, for SFT) and the episode is marked trainable=False (no sampler logprobs).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tirgym.agents.chat import ChatRenderer
from tirgym.agents.seeding import derive_seed
from tirgym.agents.types import (
    Completion,
    RolloutLimits,
    SamplingParams,
    Task,
    TextPolicy,
    TurnRequest,
)
from tirgym.episode import Episode, Span, Turn
from tirgym.errors import TirgymError

log = logging.getLogger(__name__)

READY, GENERATING, STEPPING, DONE = "ready", "generating", "stepping", "done"


class LiveWeights(Protocol):
    """Partial rollouts: newer weights the policy takes between turns, mid-episode.

    `load` runs only while no turn is being generated, so each turn is sampled by one
    version, which its Turn records.
    """

    version: int
    """The version the policy holds now."""

    def pending(self) -> bool:
        """Whether a newer version is waiting (never blocks)."""
        ...

    def load(self) -> None:
        """Load the newest waiting version into the policy."""
        ...


@dataclass
class _Slot:
    """One live episode: its env, conversation, token sequence and scheduling state."""

    index: int
    task: Task
    env: Any
    episode: Episode
    messages: list[dict[str, str]] = field(default_factory=list)
    state_key: str = ""
    status: str = READY
    t0: float = 0.0
    future: Future | None = None
    turn_started: float = 0.0
    """When the current turn was queued for generation (continuous schedule)."""
    turn: Turn | None = None
    content: str = ""
    sampled_end: str = ""
    max_turns: int | None = None
    seed: int = 0
    """This episode's sampling seed: see `episode_seed`."""
    rng: np.random.Generator | None = None
    started: bool = False
    """Admitted: its first turn was taken (max_concurrent holds the others back)."""

    @property
    def deadline(self) -> float:
        return self.t0 + self._timeout

    _timeout: float = 600.0


def episode_seed(run_seed: int | None, task: Task, sample: int) -> int:
    """The seed of one episode's sampling: a pure function of (run seed, task label, task
    seed, sample index), so the same episode samples the same way in any batch; a fresh
    random seed when the run is unseeded."""
    if run_seed is None:
        return random.getrandbits(63)
    return derive_seed(int(run_seed), task.label, int(task.seed), int(sample))


def _is_text_policy(policy: Any) -> bool:
    return isinstance(policy, TextPolicy) and not hasattr(policy, "generate")


def _end_strings(tokenizer: Any) -> tuple[str, ...]:
    if tokenizer is None:
        return ()
    from tirgym.agents.chat import end_token_ids

    return tuple(t for t in tokenizer.convert_ids_to_tokens(sorted(end_token_ids(tokenizer))) if t)


def rollout(
    policy: Any,
    tasks: list[Task],
    group_size: int = 1,
    params: SamplingParams | None = None,
    limits: RolloutLimits | None = None,
    on_episode: Callable[[Episode], None] | None = None,
    *,
    max_workers: int | None = None,
    gather_s: float | None = None,
    tools_in_template: bool = True,
    continuous: bool = True,
    make_env: Callable[..., Any] | None = None,
    max_concurrent: int | None = None,
    live_weights: LiveWeights | None = None,
) -> list[Episode]:
    """Run `group_size` episodes per task; returns them in task-major order.

    continuous: use the backend's continuous batch when it has one (`open_stream`); off,
    every backend goes round by round. Both sample the same tokens for the same seeds (up
    to the float noise of a different batch composition).
    gather_s: rounds only: how long to wait after a round for its env steps before
    generating for the episodes that are ready (default: half the last generate time, at
    least 20 ms).
    tools_in_template: pass the env's tool schemas to the chat template where it renders
    them (`tools=`; the env's schema listing then leaves the system prompt); off, or for a
    template without tools, the system prompt's own listing is all the model sees.
    make_env: builds each episode's env from (env_id, **kwargs) (default `tirgym.make`); a
    `RayEnvPool.make` puts the envs in Ray actors, stepped by the same schedule.
    max_concurrent: at most this many episodes in flight; the others wait (reset, not
    started) and take the place of one that ends, so a long list of episodes streams
    through one batch of bounded size instead of draining it chunk by chunk.
    live_weights: partial rollouts: when it has a newer version, no new turn starts until
    the turns in flight are done, then the policy loads it and episodes go on with it
    (every Turn records its `policy_version`).
    """
    if max_concurrent is not None and max_concurrent < 1:
        raise TirgymError(f"max_concurrent must be >= 1, got {max_concurrent}.")
    import tirgym

    params = params or SamplingParams()
    limits = limits or RolloutLimits()
    tokenizer = getattr(policy, "tokenizer", None)
    text_level = _is_text_policy(policy)
    end_strings = _end_strings(tokenizer)
    per_turn = max(1, min(params.max_new_tokens, limits.max_new_tokens))
    gen_params = params.replace(n=1, max_new_tokens=per_turn)
    stream = None
    if continuous and not text_level and getattr(policy, "can_stream", False):
        stream = policy.open_stream(gen_params)

    slots: list[_Slot] = []
    for task in tasks:
        for j in range(group_size):
            i = len(slots)
            sample = task.sample_index + j
            ep = Episode(
                env_id=task.id,
                seed=task.seed,
                group_id=f"{task.label}#{task.seed}",
                trainable=bool(getattr(policy, "trainable", False)) and tokenizer is not None,
                info={"task_name": task.label, "kwargs": dict(task.kwargs), "sample": sample},
            )
            slot = _Slot(index=i, task=task, env=None, episode=ep)
            slot._timeout = limits.episode_timeout_s
            slot.seed = episode_seed(params.seed, task, sample)
            slot.rng = np.random.default_rng(slot.seed)
            slots.append(slot)
    if not slots:
        return []

    workers = max_workers or min(64, len(slots))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tirgym-env")
    renderers: dict[str, ChatRenderer] = {}
    finished: list[int] = []

    def finish(
        slot: _Slot,
        stop_reason: str,
        *,
        truncated: bool = False,
        final: dict | None = None,
        notify: bool = True,
    ) -> None:
        ep = slot.episode
        final = final or {}
        ep.stop_reason = final.get("stop_reason", stop_reason) if final else stop_reason
        ep.terminated = bool(final.get("_terminated", False))
        ep.truncated = truncated or bool(final.get("_truncated", False))
        ep.success = bool(final.get("success", False))
        ep.outcome_reward = float(final.get("outcome_reward", 0.0))
        ep.timings["total_s"] = time.perf_counter() - slot.t0
        ep.messages = slot.messages
        slot.status = DONE
        finished.append(slot.index)
        if stream is not None:
            stream.release(slot.index)
        if slot.future is None:
            _close(slot.env)
        else:  # still stepping (timed out): close when the step returns (now, if it has)
            slot.future.add_done_callback(lambda _f, env=slot.env: _close(env))
        if on_episode is not None and notify:
            on_episode(ep)

    # ---- reset (concurrently) ---------------------------------------------------------
    def do_reset(slot: _Slot):
        t = time.perf_counter()
        kwargs = dict(slot.task.kwargs)
        if limits.max_turns is not None:
            kwargs["max_turns"] = limits.max_turns
        env = (make_env or tirgym.make)(slot.task.id, **kwargs)
        obs, info = env.reset(seed=slot.task.seed)
        return env, obs, info, time.perf_counter() - t

    start = time.perf_counter()
    reset_futs = {pool.submit(do_reset, s): s for s in slots}
    try:
        for fut, slot in reset_futs.items():
            slot.t0 = start
            try:
                env, obs, info, dt = fut.result()
            except Exception as e:
                if isinstance(e, tirgym.TirgymError):
                    raise
                slot.episode.info["error"] = f"reset failed: {type(e).__name__}: {e}"
                finish(slot, "error", truncated=True)
                continue
            slot.env = env
            slot.episode.timings.update(reset_s=dt, generate_s=0.0, env_s=0.0)
            slot.max_turns = info.get("max_turns")
            slot.state_key = str(info.get("state_key", ""))
            slot.messages = [
                {"role": "system", "content": info.get("system_prompt", "")},
                {"role": "user", "content": obs},
            ]
            if tokenizer is not None:
                tools = info.get("tools") if tools_in_template else None
                key = repr(tools)
                if key not in renderers:
                    renderers[key] = ChatRenderer(tokenizer, tools)
                r = renderers[key]
                ids, spans = r.prompt(slot.messages)
                ep = slot.episode
                ep.token_ids = ids
                ep.loss_mask = [0] * len(ids)
                ep.logprobs = [0.0] * len(ids)
                ep.spans = [Span(a, b, role) for a, b, role in spans]
                ep.info["template_prefix_stable"] = r.prefix_stable
                slot.renderer = r  # type: ignore[attr-defined]

        # ---- scheduling -----------------------------------------------------------------
        def collect_steps() -> None:
            """Apply finished env steps; time out hung ones."""
            now = time.perf_counter()
            for slot in slots:
                if slot.status == STEPPING:
                    if slot.future.done():
                        _apply_step(slot, finish, limits.max_total_tokens)
                    elif now > slot.deadline:
                        slot.episode.info["error"] = "env step exceeded the episode timeout"
                        finish(slot, "timeout", truncated=True)

        def take_ready() -> list[_Slot]:
            """Episodes ready for their next turn, after enforcing the limits; episodes not
            started yet are admitted while fewer than max_concurrent are in flight."""
            now = time.perf_counter()
            ready = []
            room = len(slots)
            if max_concurrent is not None:
                room = max_concurrent - sum(s.started and s.status != DONE for s in slots)
            for slot in slots:
                if slot.status != READY:
                    continue
                if not slot.started:
                    if room <= 0:
                        continue
                    room -= 1
                    slot.started = True
                    if max_concurrent is not None:  # it may have waited: its timeout starts now
                        slot.t0 = now
                if now > slot.deadline:
                    finish(slot, "timeout", truncated=True)
                elif (
                    tokenizer is not None and len(slot.episode.token_ids) >= limits.max_total_tokens
                ):
                    finish(slot, "max_tokens", truncated=True)
                elif slot.max_turns is not None and len(slot.episode.turns) >= slot.max_turns:
                    finish(slot, "max_turns", truncated=True)
                else:
                    ready.append(slot)
            return ready

        def turn_seed(slot: _Slot) -> int:
            # each turn's sampling stream is a pure function of (episode seed, turn), never
            # of the batch around it
            return derive_seed(slot.seed, "turn", len(slot.episode.turns))

        def after_turn(slot: _Slot, comp: Completion, gen_s: float) -> None:
            slot.episode.timings["generate_s"] += gen_s
            _record_turn(slot, comp, tokenizer, limits, end_strings)
            if live_weights is not None:
                slot.episode.turns[-1].policy_version = live_weights.version
            if slot.status == DONE:
                return
            if slot.turn is None:  # cut at the token budget: no env step
                finish(slot, "max_tokens", truncated=True)
                return
            slot.status = STEPPING
            slot.future = pool.submit(_step_env, slot.env, slot.content)

        def wait_steps() -> bool:
            """Block until some env step finishes or times out; False when none is running."""
            stepping = [s for s in slots if s.status == STEPPING]
            if not stepping:
                return False
            deadline = min(s.deadline for s in stepping)
            wait(
                [s.future for s in stepping],
                timeout=max(0.0, deadline - time.perf_counter()) + 1e-3,
                return_when=FIRST_COMPLETED,
            )
            return True

        if stream is not None:
            # ---- continuous: one decode loop; episodes leave for env steps and rejoin ----
            while True:
                collect_steps()
                swap = live_weights is not None and live_weights.pending()
                if swap and not stream.busy:
                    live_weights.load()  # no turn in flight: every turn has one version
                    swap = False
                for slot in [] if swap else take_ready():  # a swap waits: drain first
                    slot.status = GENERATING
                    slot.turn_started = time.perf_counter()
                    stream.add(slot.index, slot.episode.token_ids, turn_seed(slot))
                if stream.busy:
                    for key, comp in stream.step():
                        slot = slots[key]
                        after_turn(slot, comp, time.perf_counter() - slot.turn_started)
                elif not wait_steps():
                    break
        else:
            # ---- rounds: one backend call per round for every ready episode --------------
            last_gen = 0.05
            while True:
                collect_steps()
                if live_weights is not None and live_weights.pending():
                    live_weights.load()  # between rounds no turn is in flight
                ready = take_ready()
                if not ready:
                    if not wait_steps():
                        break
                    _gather([s.future for s in slots if s.status == STEPPING], gather_s, last_gen)
                    continue
                t = time.perf_counter()
                round_params = gen_params.replace(seeds=[turn_seed(s) for s in ready])
                if text_level:
                    reqs = [
                        TurnRequest(
                            messages=s.messages,
                            env=s.env.unwrapped,
                            turn=len(s.episode.turns),
                            episode_index=s.index,
                            rng=s.rng,
                        )
                        for s in ready
                    ]
                    comps = policy.act(reqs, round_params)
                else:
                    comps = policy.generate([s.episode.token_ids for s in ready], round_params)
                last_gen = time.perf_counter() - t
                for slot, comp in zip(ready, comps, strict=True):
                    after_turn(slot, comp, last_gen)
                _gather([s.future for s in ready if s.status == STEPPING], gather_s, last_gen)
    finally:
        # Only reached with live slots when an exception is propagating: those episodes are
        # unfinished, so they are not reported (an eval must rerun them on resume).
        for slot in slots:
            if slot.status != DONE:
                finish(slot, "error", truncated=True, notify=False)
        pool.shutdown(wait=False, cancel_futures=True)
        if stream is not None:
            stream.close()
    return [s.episode for s in slots]


def _gather(futures: list[Future], gather_s: float | None, last_gen: float) -> None:
    """Wait a little for a round's env steps so that the next round batches them together."""
    if not futures:
        return
    window = gather_s if gather_s is not None else max(0.02, 0.5 * last_gen)
    wait(futures, timeout=window)


def _step_env(env: Any, text: str):
    t = time.perf_counter()
    out = env.step(text)
    return out, time.perf_counter() - t


def _close(env: Any) -> None:
    if env is None:
        return
    try:
        env.close()
    except Exception as e:
        log.debug("env.close failed: %s", e)


def _record_turn(
    slot: _Slot,
    comp: Completion,
    tokenizer: Any,
    limits: RolloutLimits,
    end_strings: tuple[str, ...],
) -> None:
    """Append a sampled turn to the episode (cutting it at the token budget)."""
    ep = slot.episode
    ids, lps, text = list(comp.token_ids), list(comp.logprobs), comp.text
    if tokenizer is not None and not ids and text:
        # A text-level sampler: tokenize its text (SFT demos); no logprobs to train on.
        ids = list(tokenizer.encode(text, add_special_tokens=False))
        lps = [0.0] * len(ids)
        ep.trainable = False
    if ids and len(lps) != len(ids):
        lps = [0.0] * len(ids)
        ep.trainable = False
    finish_reason = comp.finish_reason
    cut = False
    if tokenizer is not None:
        budget = limits.max_total_tokens - len(ep.token_ids)
        if len(ids) > budget:
            ids, lps, cut = ids[: max(0, budget)], lps[: max(0, budget)], True
            text = tokenizer.decode(ids, skip_special_tokens=False)
            finish_reason = "length"
    start = len(ep.token_ids)
    ep.token_ids += ids
    ep.loss_mask += [1] * len(ids)
    ep.logprobs += lps
    end = len(ep.token_ids)
    if ids:
        ep.spans.append(Span(start, end, "assistant"))
    sampled_end = ""
    content = text
    for s in end_strings:
        if content.endswith(s):
            content, sampled_end = content[: -len(s)], s
            break
    slot.sampled_end = sampled_end
    slot.content = content
    turn = Turn(
        start=start, end=end, text=text, state_key=slot.state_key, finish_reason=finish_reason
    )
    ep.turns.append(turn)
    slot.messages.append({"role": "assistant", "content": content})
    slot.turn = None if cut else turn


def _apply_step(slot: _Slot, finish: Callable, max_total_tokens: int) -> None:
    ep, turn = slot.episode, slot.turn
    fut, slot.future = slot.future, None
    try:
        (reply, _reward, terminated, truncated, info), dt = fut.result()
    except Exception as e:
        ep.info["error"] = f"env.step failed: {type(e).__name__}: {e}"
        finish(slot, "error", truncated=True)
        return
    ep.timings["env_s"] += dt
    comps = {k: float(v) for k, v in (info.get("reward_components") or {}).items()}
    parse = info.get("parse") or {}
    turn.reward_components = comps
    turn.reward = float(sum(v for k, v in comps.items() if k != "outcome"))
    turn.action = parse.get("action", "none")
    turn.format_errors = list(parse.get("errors", []))
    turn.tool_calls = len(parse.get("tool_calls", []))
    turn.tool_errors = int(bool(info.get("tool_error")))
    role = info.get("role", "user")
    slot.messages.append({"role": role, "content": reply})
    slot.state_key = str(info.get("state_key", slot.state_key))
    if terminated or truncated:
        final = dict(info)
        final["_terminated"], final["_truncated"] = terminated, truncated
        final.setdefault("stop_reason", "env_done" if terminated else "max_turns")
        ep.messages = slot.messages
        finish(slot, final["stop_reason"], truncated=truncated, final=final)
        return
    turn.reply_role = role
    renderer = getattr(slot, "renderer", None)
    if renderer is not None:
        history = slot.messages[:-2]
        delta = renderer.reply_ids(history, slot.content, slot.sampled_end, [slot.messages[-1]])
        if len(ep.token_ids) + len(delta) >= max_total_tokens:
            # No room for the reply and another sampled token: the sequence never exceeds the budget.
            finish(slot, "max_tokens", truncated=True)
            return
        a = len(ep.token_ids)
        ep.token_ids += delta
        ep.loss_mask += [0] * len(delta)
        ep.logprobs += [0.0] * len(delta)
        ep.spans.append(Span(a, len(ep.token_ids), role))
    ep.messages = slot.messages
    slot.status = READY
