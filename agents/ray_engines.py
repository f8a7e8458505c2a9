"""Generation engines on Ray: N copies of the policy in Ray actors, behind one Policy.

`RayEnginePool(cfg, kind, path)` is a Policy the rollout engine drives like a local one: it
has a tokenizer, `generate`, and a continuous stream (`open_stream`) whose rows join and
leave between steps. Each engine actor holds an hf model (CPU tests, or one GPU each) or a
vLLM engine, and its own continuous batch.

Routing: an episode's first turn goes to the engine with the fewest episodes in flight, and
every later turn of that episode goes to the same engine (sticky by the stream key, which is
the episode) until the episode ends, so the engine's kept KV cache of its prefix is reused.
Each engine decodes until some rows finish (`run`), so a turn costs one round trip, not one
per token.

Weights: `update_weights` puts the trainer's tensors in the Ray object store once and every
engine loads them from there (one copy per node, zero network hops on one machine); the last
pushed weights are kept so that a replacement engine starts on them.

Losing an engine (OOM, node lost, `ray.kill`): the pool starts a replacement on the last
pushed weights, and the turns that were in flight on the dead engine are submitted again,
with the same prompt and seed, to a live engine. A turn's sampling is a pure function of
(weights, prompt, seed), so the episode goes on as it would have; `resubmitted` counts them.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterable
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from tirgym.agents.ray_envs import actor_lost, connect
from tirgym.agents.types import Completion, SamplingParams
from tirgym.errors import TirgymError


class EnginesConfig(BaseModel):
    """Where generation runs: in the trainer's process (local) or in Ray actors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    backend: Literal["local", "ray"] = "local"
    """local: one engine in the trainer's process; ray: `num_engines` Ray actors."""
    num_engines: int = Field(2, ge=1)
    num_cpus_per_engine: float = Field(1.0, gt=0)
    """CPUs each engine actor reserves (an hf engine on CPU uses that many torch threads)."""
    num_gpus_per_engine: float = Field(0.0, ge=0)
    """GPUs each engine actor reserves (1 on a GPU cluster: one engine per GPU)."""
    address: str | None = None
    """Ray cluster to join: "auto", ray://host:port, or None for a local Ray instance."""
    decode_steps: int = Field(64, ge=1)
    """At most this many decode steps per call to an engine before it reports back."""


class _EngineHost:
    """A Ray actor's body: one policy (hf or vllm) and its open continuous batches."""

    def __init__(self, kind: str, path: str, options: dict[str, Any], threads: int):
        torch.set_num_threads(max(1, threads))
        if kind == "hf":
            from tirgym.agents.hf_backend import HFPolicy

            self.policy = HFPolicy.from_pretrained(path, **options)
        else:
            from tirgym.agents.backends import load_policy

            self.policy = load_policy(f"{kind}:{path}", **options)
        self.streams: dict[int, Any] = {}

    def open(self, sid: int, params: SamplingParams) -> None:
        self.streams[sid] = self.policy.open_stream(params)

    def add(self, sid: int, key: Hashable, ids: list[int], seed: int) -> None:
        self.streams[sid].add(key, ids, seed)

    def release(self, sid: int, key: Hashable) -> None:
        self.streams[sid].release(key)

    def run(self, sid: int, max_steps: int) -> list[tuple[Hashable, Completion]]:
        """Decode until some rows finish (or max_steps); their completions."""
        stream, out = self.streams[sid], []
        for _ in range(max_steps):
            if not stream.busy:
                break
            out += stream.step()
            if out:
                break
        return out

    def close(self, sid: int) -> None:
        stream = self.streams.pop(sid, None)
        if stream is not None:
            stream.close()

    @torch.no_grad()
    def load(self, state: dict[str, torch.Tensor]) -> None:
        self.policy.update_weights(state.items())

    def can_stream(self) -> bool:
        return bool(getattr(self.policy, "can_stream", False))


class RayEnginePool:
    """`num_engines` engine actors as one Policy (see the module docstring)."""

    trainable = True

    def __init__(
        self, cfg: EnginesConfig, kind: str, path: str, options: dict[str, Any] | None = None
    ):
        from transformers import AutoTokenizer

        self._ray = connect(cfg.address, "backend.engines")
        self.cfg, self.kind, self.path = cfg, kind, str(path)
        self.options = dict(options or {})
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self._cls = self._ray.remote(
            num_cpus=cfg.num_cpus_per_engine,
            num_gpus=cfg.num_gpus_per_engine,
            max_restarts=0,
            scheduling_strategy="SPREAD",
        )(_EngineHost)
        self._sids = itertools.count()
        self._weights: Any = None  # object ref of the last pushed weights
        self.engines: list[Any] = [self._start() for _ in range(cfg.num_engines)]
        self.can_stream = all(self._ray.get([e.can_stream.remote() for e in self.engines]))
        if not self.can_stream:
            raise TirgymError(
                f"backend.engines on Ray needs engines with a continuous batch; {kind} "
                f"engines of {self.path} have none"
            )
        self.replaced = 0
        """Engines started to replace dead ones."""
        self.resubmitted = 0
        """Turns submitted again after their engine died."""

    def _start(self) -> Any:
        threads = max(1, int(self.cfg.num_cpus_per_engine))
        engine = self._cls.remote(self.kind, self.path, self.options, threads)
        if self._weights is not None:
            engine.load.remote(self._weights)
        return engine

    def replace(self, i: int, dead: Any) -> Any:
        """Engine i died: kill it for good and start another on the last pushed weights."""
        if self.engines[i] is dead:
            self._ray.kill(dead, no_restart=True)
            self.engines[i] = self._start()
            self.replaced += 1
        return self.engines[i]

    @torch.no_grad()
    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Push weights (names as the engines' models take them) to every engine."""
        state = {n: t.detach().to("cpu").clone() for n, t in named_tensors}
        self._weights = self._ray.put(state)
        pending = [(i, e, e.load.remote(self._weights)) for i, e in enumerate(self.engines)]
        for i, engine, ref in pending:
            try:
                self._ray.get(ref)
            except Exception as e:
                if not actor_lost(e):
                    raise
                self._ray.get(self.replace(i, engine).load.remote(self._weights))

    def open_stream(self, params: SamplingParams) -> RayEngineStream:
        return RayEngineStream(self, params)

    def generate(
        self, prompt_token_ids: list[list[int]], params: SamplingParams
    ) -> list[Completion]:
        """Every prompt (x params.n) through the engines' streams, spread over them."""
        from tirgym.agents.seeding import row_seeds

        rows = [p for p in prompt_token_ids for _ in range(max(1, params.n))]
        stream = self.open_stream(params.replace(n=1))
        try:
            seeds = row_seeds(params, len(prompt_token_ids))
            for i, (ids, seed) in enumerate(zip(rows, seeds, strict=True)):
                stream.add(i, ids, seed)
            out: list[Completion | None] = [None] * len(rows)
            while stream.busy:
                for i, comp in stream.step():
                    out[i] = comp
                    stream.release(i)
        finally:
            stream.close()
        return out  # type: ignore[return-value]

    def close(self) -> None:
        for e in self.engines:
            self._ray.kill(e, no_restart=True)
        self.engines = []


class RayEngineStream:
    """A continuous batch spread over the pool's engines, each episode on one engine."""

    def __init__(self, pool: RayEnginePool, params: SamplingParams):
        self.pool, self.params = pool, params
        self.sid = next(pool._sids)
        self._opened: set[int] = set()  # engines (by id) with this stream open
        self.home: dict[Hashable, int] = {}  # episode key -> engine index, until release
        self.inflight: dict[Hashable, tuple[list[int], int]] = {}  # key -> (prompt, seed)
        self._runs: dict[Any, int] = {}  # an engine's outstanding `run` -> engine index
        self.routed: dict[Hashable, set[int]] = {}  # every engine each key was sent to

    def _engine(self, i: int) -> Any:
        engine = self.pool.engines[i]
        if id(engine) not in self._opened:
            engine.open.remote(self.sid, self.params)
            self._opened.add(id(engine))
        return engine

    def add(self, key: Hashable, prompt_ids: list[int], seed: int) -> None:
        if key not in self.home:  # a new episode: the engine with the fewest
            load = [0] * len(self.pool.engines)
            for i in self.home.values():
                load[i] += 1
            self.home[key] = min(range(len(load)), key=load.__getitem__)
        i = self.home[key]
        self.inflight[key] = (list(prompt_ids), int(seed))
        self.routed.setdefault(key, set()).add(i)
        self._engine(i).add.remote(self.sid, key, list(prompt_ids), int(seed))

    @property
    def busy(self) -> bool:
        return bool(self.inflight)

    def release(self, key: Hashable) -> None:
        i = self.home.pop(key, None)
        self.inflight.pop(key, None)
        if i is not None:
            self._engine(i).release.remote(self.sid, key)

    def step(self) -> list[tuple[Hashable, Completion]]:
        """Completions of the first engine(s) to finish some rows (waits for one)."""
        ray = self.pool._ray
        running = set(self._runs.values())
        for i in sorted({self.home[k] for k in self.inflight} - running):
            ref = self._engine(i).run.remote(self.sid, self.pool.cfg.decode_steps)
            self._runs[ref] = i
        if not self._runs:
            return []
        ready, _ = ray.wait(list(self._runs), num_returns=1)
        out: list[tuple[Hashable, Completion]] = []
        for ref in ready:
            i = self._runs.pop(ref)
            try:
                got = ray.get(ref)
            except Exception as e:
                if not actor_lost(e):
                    raise
                self._lost(i)
                continue
            for key, comp in got:
                if self.inflight.pop(key, None) is not None:
                    out.append((key, comp))
        return out

    def _lost(self, i: int) -> None:
        """Engine i died: replace it and submit its turns in flight again (same seeds)."""
        dead = self.pool.engines[i]
        self._opened.discard(id(dead))
        for ref in [r for r, j in self._runs.items() if j == i]:
            del self._runs[ref]
        self.pool.replace(i, dead)
        for key, (ids, seed) in list(self.inflight.items()):
            if self.home.get(key) == i:
                self._engine(i).add.remote(self.sid, key, ids, seed)
                self.pool.resubmitted += 1
        # episodes between turns lost their kept cache with it: the new engine rebuilds it

    def close(self) -> None:
        for engine in self.pool.engines:
            if id(engine) in self._opened:
                engine.close.remote(self.sid)
        self._opened.clear()
        self.inflight.clear()
        self._runs.clear()
