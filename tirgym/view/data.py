"""What the viewer shows, read from a run dir, an eval dir or an episodes JSONL.

The page gets three parts. An index: one column per list field (env, reward, step, ...)
with a value per episode, which the list filters and sorts without touching anything
else. Details: each episode as one JSON line in a text blob, parsed by the page only when
that episode is opened, so 100k episodes cost the page one string, not 100k objects or
DOM nodes. A search blob: each episode's conversation text, lowercased, one line each,
which search scans with indexOf. The episodes are streamed from the JSONL one at a time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from tirgym.episode import Episode, iter_jsonl
from tirgym.errors import TirgymError
from tirgym.eval.metrics import clean_json
from tirgym.eval.results import EPISODES_FILE, RESULTS_FILE, RUN_FILE, load_results
from tirgym.protocol import scan_turn

TOKEN_ADVANTAGES = "token_advantages"
"""Episode.info key where the trainer logs the per-token advantages its update used
(`log.token_advantages: true`)."""

INDEX_COLUMNS = (
    "env",
    "seed",
    "group",
    "step",
    "success",
    "reward",
    "outcome",
    "turns",
    "tokens",
    "sampled",
    "tool_errors",
    "format_errors",
    "stop",
    "adv",
)
"""The list's fields, one array each in the page's index."""


@dataclass
class Source:
    """Where the episodes and the tables next to them are."""

    kind: Literal["run", "eval", "episodes"]
    path: Path
    episodes: Path
    metrics: Path | None = None
    results: dict[str, Any] | None = None
    tokenizer: str | None = None
    """A local dir holding the policy's tokenizer (to show token text), if one is known."""
    grams: Path | None = None
    """strategic_grams.json of a run (HICRA's planning grams), else the built-in lexicon."""
    hicra_scope: str = "think"


def find_source(path: str | Path, tokenizer: str | None = None) -> Source:
    """A run dir (metrics.jsonl / config.yaml), an eval dir (results.json) or a JSONL file."""
    p = Path(path)
    if p.is_file():
        return Source("episodes", p, p, tokenizer=tokenizer or _sibling_tokenizer(p.parent))
    if not p.is_dir():
        raise TirgymError(f"No such run dir, eval dir or episodes file: {str(path)!r}.")
    if (p / RESULTS_FILE).exists():
        results = load_results(p)
        eps = p / EPISODES_FILE
        return Source("eval", p, eps, results=results, tokenizer=tokenizer or _eval_tokenizer(p))
    if (p / "metrics.jsonl").exists() or (p / "config.yaml").exists():
        cfg = _read_yaml(p / "config.yaml")
        scope = (cfg.get("advantage") or {}).get("hicra_scope", "think")
        grams = p / "strategic_grams.json"
        return Source(
            "run",
            p,
            p / "episodes.jsonl",
            metrics=p / "metrics.jsonl" if (p / "metrics.jsonl").exists() else None,
            tokenizer=tokenizer or _run_tokenizer(p, cfg),
            grams=grams if grams.exists() else None,
            hicra_scope=scope if scope in ("think", "all") else "think",
        )
    if (p / "episodes.jsonl").exists():
        return Source("episodes", p, p / "episodes.jsonl", tokenizer=tokenizer)
    raise TirgymError(
        f"{p} holds no run (metrics.jsonl, config.yaml), eval (results.json) or episodes.jsonl: "
        "give a run dir, an eval dir or an episodes JSONL file."
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _has_tokenizer(d: Path) -> bool:
    return d.is_dir() and (
        (d / "tokenizer.json").exists() or (d / "tokenizer_config.json").exists()
    )


def _run_tokenizer(run: Path, cfg: dict[str, Any]) -> str | None:
    model = str(cfg.get("model", ""))
    for d in (run / "tiny_model", run / "final_model", Path(model) if model else None):
        if d is not None and _has_tokenizer(d):
            return str(d)
    return None


def _eval_tokenizer(out: Path) -> str | None:
    try:
        policy = json.loads((out / RUN_FILE).read_text()).get("policy", "")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    _, _, arg = str(policy).partition(":")
    return arg if arg and _has_tokenizer(Path(arg)) else None


def _sibling_tokenizer(d: Path) -> str | None:
    """An episodes file inside a run dir: that run's tokenizer."""
    return (
        _run_tokenizer(d, _read_yaml(d / "config.yaml")) if (d / "config.yaml").exists() else None
    )


def load_tokenizer(path: str):
    """A local tokenizer (never a download: the viewer works offline)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise TirgymError(
            f"Cannot load a tokenizer from {path!r} ({e}); give --tokenizer a local model dir."
        ) from None


@dataclass
class PageData:
    """Everything the page embeds (see the module docstring for the three parts)."""

    meta: dict[str, Any]
    index: dict[str, list[Any]]
    details: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.details)


def _num(x: float, digits: int = 4) -> float | None:
    """A JSON-safe rounded float (NaN and inf become None)."""
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), digits)


def _nums(values: np.ndarray, digits: int) -> list[float | None]:
    """`_num` over an array, vectorised (the per-token arrays are most of the work)."""
    values = np.round(np.asarray(values, dtype=np.float64), digits)
    finite = np.isfinite(values)
    out = values.tolist()
    if not finite.all():
        out = [v if ok else None for v, ok in zip(out, finite.tolist(), strict=True)]
    return out


def _runs(mask: list[int]) -> list[list[int]]:
    """[start, end) ranges where mask is 1 (a loss mask is a few sampled runs)."""
    out: list[list[int]] = []
    start = None
    for i, m in enumerate(mask):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append([start, i])
            start = None
    if start is not None:
        out.append([start, len(mask)])
    return out


def _turn_parts(text: str) -> list[list[str]]:
    """The turn split as the parser reads it: [kind, text] with kind in think, tool_call,
    answer, python, or text for what lies outside every region."""
    parts: list[list[str]] = []
    pos = 0
    for r in sorted(scan_turn(text), key=lambda r: r.start):
        if r.start > pos:
            parts.append(["text", text[pos : r.start]])
        parts.append([r.kind, text[r.body_start : r.body_end]])
        pos = max(pos, r.end)
    if pos < len(text):
        parts.append(["text", text[pos:]])
    return parts


def _trained(ep: Episode) -> np.ndarray:
    return np.asarray(ep.loss_mask, dtype=bool)


def _logged_advantages(ep: Episode) -> np.ndarray | None:
    adv = ep.info.get(TOKEN_ADVANTAGES)
    if not isinstance(adv, list) or len(adv) != len(ep.loss_mask):
        return None
    return np.asarray([np.nan if a is None else a for a in adv], dtype=np.float64)


def episode_detail(ep: Episode, index: int, planning: list[list[int]] | None) -> dict[str, Any]:
    """One episode as the page's episode view reads it.

    `lp` and `adv` hold values for the trained tokens only, in order (the rest are masked:
    no logprob, no credit), which keeps long prompts and env replies cheap."""
    trained = _trained(ep)
    adv = _logged_advantages(ep)
    lp = np.asarray(ep.logprobs, dtype=np.float64)
    info = {k: v for k, v in ep.info.items() if k != TOKEN_ADVANTAGES}
    return {
        "i": index,
        "env": ep.env_id,
        "seed": ep.seed,
        "group": ep.group_id,
        "outcome": _num(ep.outcome_reward),
        "reward": _num(ep.total_reward),
        "success": ep.success,
        "stop": ep.stop_reason,
        "terminated": ep.terminated,
        "truncated": ep.truncated,
        "trainable": ep.trainable,
        "messages": ep.messages,
        "spans": [[s.start, s.end, s.role] for s in ep.spans],
        "turns": [
            {
                "start": t.start,
                "end": t.end,
                "reward": _num(t.reward),
                "components": {k: _num(v) for k, v in t.reward_components.items()},
                "action": t.action,
                "format_errors": t.format_errors,
                "tool_calls": t.tool_calls,
                "tool_errors": t.tool_errors,
                "finish": t.finish_reason,
                "parts": _turn_parts(t.text),
            }
            for t in ep.turns
        ],
        "ids": ep.token_ids,
        "mask": _runs(ep.loss_mask),
        "lp": _nums(lp[trained], 4) if len(lp) == len(trained) else [],
        "adv": _nums(adv[trained], 5) if adv is not None else None,
        "plan": planning,
        "info": clean_json(info),
        "timings": {k: _num(v) for k, v in ep.timings.items()},
    }


def _episode_advantage(ep: Episode) -> float | None:
    """Mean logged advantage over the trained tokens (the episode's credit at a glance)."""
    adv = _logged_advantages(ep)
    if adv is None:
        return None
    vals = adv[_trained(ep)]
    return _num(float(np.nanmean(vals))) if vals.size and not np.isnan(vals).all() else None


def index_row(ep: Episode) -> tuple[Any, ...]:
    return (
        ep.env_id,
        ep.seed,
        ep.group_id,
        ep.info.get("train_step"),
        ep.success,
        _num(ep.total_reward),
        _num(ep.outcome_reward),
        len(ep.turns),
        len(ep.token_ids),
        ep.num_sampled_tokens,
        sum(t.tool_errors for t in ep.turns),
        sum(len(t.format_errors) for t in ep.turns),
        ep.stop_reason,
        _episode_advantage(ep),
    )


def iter_episodes(path: Path) -> Iterator[Episode]:
    if not path.exists():
        return
    try:
        yield from iter_jsonl(path)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise TirgymError(
            f"{path} is not an episodes JSONL file ({type(e).__name__}: {e}); give a file "
            "written by rollout --out, eval or train (episodes.jsonl)."
        ) from None


class _Planner:
    """HICRA planning tokens ([start, end) ranges) with the run's grams and scope."""

    def __init__(self, tokenizer, source: Source):
        from tirgym.trainer.planning import StrategicGrams, builtin_grams

        self.tokenizer = tokenizer
        self.grams = StrategicGrams.load(source.grams) if source.grams else builtin_grams()
        self.scope = source.hicra_scope

    def __call__(self, ep: Episode) -> list[list[int]]:
        from tirgym.trainer.planning import planning_mask

        return _runs(planning_mask(ep, self.tokenizer, self.grams, scope=self.scope).tolist())


def _vocab(tokenizer, ids: set[int]) -> dict[str, str]:
    """id -> the token's text as the page shows it (each id decoded on its own)."""
    return {str(i): tokenizer.decode([i]) for i in sorted(ids)}


def read_metrics(path: Path | None) -> list[dict[str, Any]]:
    """metrics.jsonl rows (a torn last line skipped), numbers only, NaN as None."""
    if path is None or not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append({k: _num(v, 6) for k, v in row.items() if isinstance(v, int | float)})
    return rows


def build_data(source: Source, tokenizer=None) -> PageData:
    """Stream the source's episodes into the page's index, details and search blobs."""
    planner = _Planner(tokenizer, source) if tokenizer is not None else None
    columns: list[list[Any]] = [[] for _ in INDEX_COLUMNS]
    details: list[str] = []
    search: list[str] = []
    seen_ids: set[int] = set()
    has_adv = False
    for i, ep in enumerate(iter_episodes(source.episodes)):
        for col, value in zip(columns, index_row(ep), strict=True):
            col.append(value)
        plan = planner(ep) if planner is not None else None
        detail = episode_detail(ep, i, plan)
        has_adv = has_adv or detail["adv"] is not None
        details.append(dumps(detail))
        search.append(dumps("\n".join(m.get("content", "") for m in ep.messages).lower()))
        if tokenizer is not None:
            seen_ids.update(ep.token_ids)
    meta = {
        "kind": source.kind,
        "path": str(source.path),
        "episodes_file": str(source.episodes),
        "count": len(details),
        "tokenizer": source.tokenizer if tokenizer is not None else None,
        "vocab": _vocab(tokenizer, seen_ids) if tokenizer is not None else None,
        "layers": {
            "mask": True,
            "logprob": True,
            "advantage": has_adv,
            "planning": planner is not None,
        },
        "metrics": read_metrics(source.metrics),
        "results": clean_json(source.results) if source.results else None,
    }
    index = dict(zip(INDEX_COLUMNS, columns, strict=True))
    return PageData(meta=meta, index=index, details=details, search=search)


def dumps(obj: Any) -> str:
    """JSON safe inside a <script> element: ASCII only (so a JS string index equals a
    Python one) and no `<` (no `</script>` or `<!--` can end the element)."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False).replace(
        "<", "\\u003c"
    )
