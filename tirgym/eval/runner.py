"""`evaluate(...)`: run a policy over (env entry, seed, sample) keys, resumably.

Every finished episode is appended to `episodes.jsonl` and fsynced the moment the rollout
engine hands it over, tagged with its key in `episode.info["eval"]`. A rerun on the same
out dir reads the file back, drops a torn last line, and runs only the missing keys, so a
crash (even SIGKILL) loses no finished episode and never duplicates one. Metrics are
computed from the keys in sorted order, so a resumed run writes the same results.json as
an uninterrupted one. The trainer's periodic eval calls this same function.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tirgym.env_spec import EnvSpec
from tirgym.episode import Episode, append_jsonl, iter_jsonl
from tirgym.errors import TirgymError
from tirgym.eval.metrics import EvalEntry, Key, episode_key
from tirgym.eval.report import write_outputs
from tirgym.eval.results import EPISODES_FILE, RUN_FILE, EvalResult, build_results
from tirgym.registry import HELDOUT_SEED_BASE, EvalSettings, Suite, env_meta, get_suite, make

log = logging.getLogger(__name__)


# ---- planning -------------------------------------------------------------------------


def parse_seeds(spec: str | int | Sequence[int] | range | None, default: range) -> list[int]:
    """Seeds from `N` (N seeds from the held-out base), `A:B` (half-open), `A-B` (inclusive),
    `A,B,C`, an int count, a range or a list."""
    if spec is None:
        return list(default)
    if isinstance(spec, range):
        return list(spec)
    if isinstance(spec, int):
        if spec < 1:
            raise TirgymError(f"seed count must be >= 1, got {spec}.")
        return list(range(default.start, default.start + spec))
    if not isinstance(spec, str):
        return [int(s) for s in spec]
    text = spec.strip()
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        elif ":" in text:
            a, b = text.split(":")
            seeds = list(range(int(a), int(b)))
        elif "-" in text.lstrip("-"):
            a, b = text.rsplit("-", 1)
            seeds = list(range(int(a), int(b) + 1))
        else:
            return parse_seeds(int(text), default)
    except ValueError:
        raise TirgymError(
            f"bad seed range {spec!r}: use N (count from {default.start}), A:B (half-open), "
            "A-B (inclusive) or A,B,C."
        ) from None
    if not seeds:
        raise TirgymError(f"seed range {spec!r} is empty.")
    if len(set(seeds)) != len(seeds):
        raise TirgymError(f"seed range {spec!r} repeats a seed.")
    return seeds


def resolve_entries(
    suite: str | Suite | None = None,
    envs: Sequence[str | EnvSpec] | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> tuple[list[EvalEntry], EvalSettings, str | None]:
    """Entries and eval settings from a suite (name, YAML path or object) and/or env ids
    (an id with `env_kwargs` is labelled by them) or specs."""
    if suite is None and not envs:
        raise TirgymError("nothing to evaluate: give a suite (--suite NAME) or env ids (--env ID).")
    entries: list[EvalEntry] = []
    settings = EvalSettings()
    suite_name = None
    if suite is not None:
        s = get_suite(suite) if isinstance(suite, str) else suite
        suite_name = s.name
        settings = s.eval
        entries += [_row(e) for e in s.envs]
    for e in envs or []:
        if isinstance(e, EnvSpec):
            entries.append(_row(e))
        else:
            env_meta(e)  # unknown id -> one clear line with suggestions
            entries.append(EvalEntry.by_kwargs(e, env_kwargs))
    labels = [e.label for e in entries]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise TirgymError(f"eval entries need distinct names; repeated: {', '.join(dup)}.")
    return entries, settings, suite_name


def _row(spec: EnvSpec) -> EvalEntry:
    """An eval row from any env spec (a suite entry, a training mix entry, a row)."""
    if isinstance(spec, EvalEntry):
        return spec
    return EvalEntry(id=spec.id, kwargs=dict(spec.kwargs), name=spec.name)


def count_tasks(entry: EvalEntry) -> EvalEntry:
    """The entry with `num_tasks` filled in from its env (a dataset's row count, None for
    generated tasks); building the env also reports bad kwargs before anything runs."""
    if entry.num_tasks is not None:
        return entry
    env = make(entry.id, **entry.kwargs)
    try:
        n = getattr(env.unwrapped, "num_tasks", None)
    finally:
        env.close()
    return entry.model_copy(update={"num_tasks": n})


def entry_seeds(entry: EvalEntry, seeds: list[int] | None, default: list[int]) -> list[int]:
    """The seeds an entry runs: the given ones, else each row once for a dataset-backed
    entry (num_tasks consecutive seeds from the default start cover every row), else the
    default seeds."""
    if seeds is not None:
        return seeds
    if entry.num_tasks:
        return list(range(default[0], default[0] + entry.num_tasks))
    return default


def plan_warnings(
    entries: list[EvalEntry], seeds: dict[str, list[int]], samples: int, temperature: float
) -> list[str]:
    """What makes an eval's numbers weaker than they look, in one line each."""
    out = []
    if samples > 1 and temperature == 0:
        out.append(
            f"{samples} samples per task at temperature 0: a model gives the same answer to "
            f"every sample, so pass@{samples} = success@1 and the extra samples add no "
            "information (intervals count tasks, not samples); sample with --temperature > 0 "
            "or use --samples 1."
        )
    for e in entries:
        n, ss = e.num_tasks, seeds[e.label]
        if n and len({s % n for s in ss}) < len(ss):
            out.append(
                f"{e.label}: {len(ss)} seeds wrap around its {n} dataset rows, so rows repeat "
                f"(up to {max(_row_counts(ss, n))} times) and it has {len({s % n for s in ss})} "
                f"distinct tasks; by default each row runs once (leave out --seeds)."
            )
    return out


def _row_counts(seeds: list[int], n: int) -> list[int]:
    counts: dict[int, int] = {}
    for s in seeds:
        counts[s % n] = counts.get(s % n, 0) + 1
    return list(counts.values())


# ---- out dir ---------------------------------------------------------------------------


def repair_jsonl(path: Path) -> int:
    """Cut a torn last line (a crash mid-write) so appends start on a fresh line; returns bytes cut."""
    if not path.exists():
        return 0
    with open(path, "rb+") as f:
        data = f.read()
        keep = data.rfind(b"\n") + 1
        if keep == len(data):
            return 0
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
        return len(data) - keep


def load_finished(path: Path) -> dict[Key, Episode]:
    """Finished episodes by key; the first copy of a key wins (a key is never run twice)."""
    done: dict[Key, Episode] = {}
    if path.exists():
        repair_jsonl(path)
        for ep in iter_jsonl(path):
            if "eval" in ep.info:
                done.setdefault(episode_key(ep), ep)
    return done


def _check_run_file(out: Path, run: dict[str, Any], fresh: bool) -> None:
    """Refuse to mix episodes of a different policy or sampling setup in one out dir."""
    f = out / RUN_FILE
    if f.exists() and not fresh:
        old = json.loads(f.read_text())
        for key in ("policy", "sampling", "limits"):
            if old.get(key) != run.get(key):
                raise TirgymError(
                    f"{out} holds an eval with a different {key} ({old.get(key)} vs {run.get(key)}); "
                    "use another --out, or --fresh to start over."
                )
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps(run, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, f)


# ---- the run -----------------------------------------------------------------------------


def _rollout(*args: Any, **kwargs: Any) -> list[Episode]:
    from tirgym.agents import rollout

    return rollout(*args, **kwargs)


def _policy_from_spec(spec: str, **opts: Any) -> Any:
    from tirgym.agents.backends import load_policy

    return load_policy(spec, **opts)


def evaluate(
    policy: Any,
    *,
    suite: str | Suite | None = None,
    envs: Sequence[str | EnvSpec] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    samples: int | None = None,
    seeds: str | int | Sequence[int] | range | None = None,
    out_dir: str | Path | None = None,
    temperature: float | None = None,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    max_turns: int | None = None,
    max_total_tokens: int = 4096,
    episode_timeout_s: float = 600.0,
    batch_size: int = 64,
    sampling_seed: int = 0,
    policy_label: str | None = None,
    progress: bool = False,
    fresh: bool = False,
    write_report: bool = True,
    charts: bool = True,
    on_episode: Callable[[Episode], None] | None = None,
) -> EvalResult:
    """Evaluate `policy` (a Policy object or a spec for load_policy: "hf:PATH", "solver", ...)
    on every (entry, seed) `samples` times, resuming from `out_dir` when it holds episodes.

    Defaults come from the suite's eval settings (held-out seeds, samples, temperature,
    max turns). With `out_dir` None nothing is written and nothing resumes (the trainer
    can use this for a quick in-memory eval).
    """
    from tirgym.agents.types import Task, engine_args

    entries, settings, suite_name = resolve_entries(suite, envs, env_kwargs)
    entries = [count_tasks(e) for e in entries]
    k = samples if samples is not None else settings.samples
    if k < 1:
        raise TirgymError(f"--samples must be >= 1, got {k}.")
    seed_base = settings.seed_start if settings.seed_start is not None else HELDOUT_SEED_BASE
    default_seeds = list(range(seed_base, seed_base + settings.num_seeds))
    # a suite that sets num_seeds asks for that many seeds on every entry, datasets too
    given = seeds is not None or "num_seeds" in settings.model_fields_set
    seed_list = parse_seeds(seeds, range(seed_base, seed_base + settings.num_seeds))
    seeds_of = {
        e.label: entry_seeds(e, seed_list if given else None, default_seeds) for e in entries
    }
    temp = settings.temperature if temperature is None else temperature
    turns_cap = max_turns if max_turns is not None else settings.max_turns
    warnings = plan_warnings(entries, seeds_of, k, temp)
    for w in warnings:
        log.warning("warning: %s", w)

    if isinstance(policy, str):
        label = policy_label or policy
        policy = _policy_from_spec(policy)
    else:
        label = policy_label or type(policy).__name__
    params, limits = engine_args(
        seed=sampling_seed,
        temperature=temp,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        max_turns=turns_cap,
        max_total_tokens=max_total_tokens,
        episode_timeout_s=episode_timeout_s,
    )
    run = {
        "policy": label,
        "sampling": {
            "temperature": temp,
            "top_p": top_p,
            "max_new_tokens": max_new_tokens,
            "seed": sampling_seed,
        },
        "limits": {"max_turns": turns_cap, "max_total_tokens": max_total_tokens},
    }

    out = Path(out_dir) if out_dir is not None else None
    done: dict[Key, Episode] = {}
    ep_path = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        ep_path = out / EPISODES_FILE
        if fresh and ep_path.exists():
            ep_path.unlink()
        _check_run_file(out, run, fresh)
        done = load_finished(ep_path)

    plan: list[Key] = [
        (e.label, s, i) for e in entries for s in seeds_of[e.label] for i in range(k)
    ]
    todo = [key for key in plan if key not in done]
    by_label = {e.label: e for e in entries}

    bar = _Progress(
        len(plan),
        len(plan) - len(todo),
        sum(bool(done[key].success) for key in plan if key in done),
        progress,
    )
    sink = _Sink(ep_path, done, bar, on_episode)
    t_start = time.monotonic()
    try:
        for label_, chunk in _by_entry(todo):
            entry = by_label[label_]
            # one task per missing (seed, sample): the engine seeds each episode by its
            # sample index, so a resumed run samples exactly what an uninterrupted one would
            tasks = [
                Task(entry.id, s, dict(entry.kwargs), entry.label, sample_index=i)
                for _, s, i in chunk
            ]
            call = sink.call(entry)
            eps = _rollout(
                policy,
                tasks,
                params=params,
                limits=limits,
                on_episode=call,
                max_concurrent=batch_size,
            )
            for ep in eps:  # an engine that did not call back still gets every episode saved
                call(ep)
    finally:
        bar.close()
    elapsed = time.monotonic() - t_start

    episodes = [done[key] for key in plan]
    results = build_results(entries, episodes, k, seeds_of, run, suite_name, warnings)
    results["wall_s_this_run"] = elapsed
    result = EvalResult(results=results, episodes=episodes, out_dir=out)
    if out is not None and write_report:
        result.files = write_outputs(result, out, charts=charts)
    return result


class _Sink:
    """Tags each finished episode with its key, appends + fsyncs it, and counts it once."""

    def __init__(
        self,
        path: Path | None,
        done: dict[Key, Episode],
        bar: _Progress,
        on_episode: Callable[[Episode], None] | None,
    ):
        self.path, self.done, self.bar, self.on_episode = path, done, bar, on_episode
        self.lock = threading.Lock()  # engines may call back from worker threads

    def call(self, entry: EvalEntry) -> Callable[[Episode], None]:
        seen: set[int] = set()
        t0 = time.monotonic()

        def record(ep: Episode) -> None:
            with self.lock:
                if id(ep) in seen:
                    return
                seen.add(id(ep))
                sample = int(ep.info["sample"])  # the engine's Task.sample_index + group index
                ep.info["eval"] = {
                    "entry": entry.label,
                    "sample": sample,
                    "kwargs": dict(entry.kwargs),
                    "wall_s": time.monotonic() - t0,
                }
                if self.path is not None:
                    append_jsonl(self.path, [ep])
                self.done[episode_key(ep)] = ep
                self.bar.advance(bool(ep.success))
            if self.on_episode is not None:
                self.on_episode(ep)

        return record


def _by_entry(keys: list[Key]) -> Iterable[tuple[str, list[Key]]]:
    """The keys in runs of one entry each (the plan lists an entry's keys together)."""
    for label, group in itertools.groupby(keys, key=lambda k: k[0]):
        yield label, list(group)


class _Progress:
    """A rich progress bar with ETA and running success; a no-op when disabled."""

    def __init__(self, total: int, completed: int, successes: int, enabled: bool):
        self.successes, self.finished = successes, completed
        self._p = None
        if not enabled or total == 0:
            return
        from rich.console import Console

        from tirgym.progress import progress_bar

        self._p = progress_bar(
            "[bold]eval", "success {task.fields[rate]}", console=Console(stderr=True)
        )
        self._p.start()
        self._task = self._p.add_task("eval", total=total, completed=completed, rate=self._rate())

    def _rate(self) -> str:
        if self.finished == 0:
            return "-"
        return f"{self.successes}/{self.finished} ({100 * self.successes / self.finished:.1f}%)"

    def advance(self, success: bool) -> None:
        self.finished += 1
        self.successes += int(success)
        if self._p is not None:
            self._p.update(self._task, advance=1, rate=self._rate())

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
