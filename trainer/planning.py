"""Planning tokens for HICRA: strategic grams, the token mask, mining, semantic entropy.

HICRA ("Emergent Hierarchical Reasoning in LLMs through Reinforcement Learning", 2025)
gives extra credit to *planning* tokens: tokens inside a strategic gram (SG), a short
phrase that works as a planning move ("notice that", "let's try a different approach",
"let me verify"). This module finds them.

Choices (the paper's code was not public; see docs/ALGORITHMS.md):
- A gram is a word sequence; it matches case-insensitively at word boundaries, with any
  run of spaces, commas, apostrophes or hyphens between its words ("first, we need to"
  matches "First we need to"; "let's" is the words "let s").
- Grams are matched only inside each turn's think text (`<think>...</think>`, or
  everything before `</think>` when the chat template opened the tag) unless
  `scope="all"`.
- A token is a planning token iff the characters it produced overlap a matched gram; the
  characters come from the sampled ids (`tirgym.trainer.token_spans`), never from
  re-tokenising the text.
- Mining: word n-grams (n = 3..5, never across sentence punctuation) from the think text
  of successful rollouts, clustered (an embedder when one is given, greedy lexical
  clustering otherwise: word-set Jaccard >= 0.5 or one gram contained in the other);
  a cluster's document frequency is the number of rollouts containing any member; the
  top 20% of clusters by that frequency are kept. The built-in lexicon is always merged
  in, so HICRA works with no mining at all.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from tirgym.episode import Episode
from tirgym.trainer.token_spans import TurnTokens, decode_ids, decode_turn, think_region

# Built-in lexicon: planning moves grouped by function; the group is the gram's cluster
# (used by semantic entropy). Kept to phrases that plan or steer, not ones that compute.
BUILTIN_GRAMS: dict[str, list[str]] = {
    "deduce": [
        "notice that",
        "note that",
        "this means that",
        "it follows that",
        "which means that",
        "we can see that",
        "the key insight is",
        "the key is to",
        "observe that",
    ],
    "plan": [
        "first we need to",
        "first let's",
        "first i need to",
        "we need to find",
        "i need to find",
        "the goal is to",
        "my plan is to",
        "let's break this down",
        "break it down",
        "step by step",
        "the next step is",
        "next we need to",
        "then we can",
        "to solve this",
        "we want to",
        "i should use",
        "let me use the",
        "i will use the",
        "let's use the",
    ],
    "branch": [
        "let's try a different approach",
        "try a different approach",
        "another approach is",
        "a better approach",
        "alternatively we can",
        "instead let's",
        "let's consider",
        "what if we",
        "let's try",
        "let me try",
    ],
    "backtrack": [
        "wait this doesn't work",
        "this doesn't work",
        "that doesn't work",
        "that's not right",
        "this is wrong",
        "i made a mistake",
        "let me reconsider",
        "let me rethink",
        "go back to",
        "start over",
    ],
    "verify": [
        "let me verify",
        "let me check",
        "let's verify",
        "let's check",
        "double check",
        "check again",
        "to confirm",
        "make sure that",
        "sanity check",
        "does this make sense",
    ],
}

_SEP = r"[\s,'\u2019\-]+"
_WORD = re.compile(r"[a-z0-9]+")
_CLAUSE_SPLIT = re.compile(r"[.!?;:\n()\[\]{}<>\"]+")


def normalize_gram(text: str) -> str:
    """Lowercase words joined by single spaces: the key a gram is stored and counted by."""
    return " ".join(_WORD.findall(text.lower()))


@dataclass
class StrategicGrams:
    """A set of strategic grams, each with a cluster label (semantic entropy counts these)."""

    clusters: dict[str, str] = field(default_factory=dict)
    """normalised gram -> cluster label."""
    source: str = "builtin"

    @property
    def grams(self) -> list[str]:
        return sorted(self.clusters)

    def __len__(self) -> int:
        return len(self.clusters)

    @cached_property
    def pattern(self) -> re.Pattern[str] | None:
        """One regex that reports every gram occurrence, overlapping ones included."""
        if not self.clusters:
            return None
        alts = sorted(
            (_SEP.join(re.escape(w) for w in g.split()) for g in self.clusters),
            key=lambda p: (-len(p), p),
        )
        return re.compile(r"(?=\b(" + "|".join(alts) + r")\b)", re.IGNORECASE)

    def find(self, text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int, str]]:
        """(char_start, char_end, gram) of every occurrence inside text[start:end]."""
        if self.pattern is None:
            return []
        end = len(text) if end is None else end
        out = []
        for m in self.pattern.finditer(text, start, end):
            out.append((m.start(1), m.end(1), normalize_gram(m.group(1))))
        return out

    def merged(self, other: StrategicGrams) -> StrategicGrams:
        clusters = dict(other.clusters)
        clusters.update(self.clusters)  # own labels win on overlap
        return StrategicGrams(clusters, source=f"{self.source}+{other.source}")

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"source": self.source, "clusters": self.clusters}
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> StrategicGrams:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(dict(d["clusters"]), source=d.get("source", "file"))

    @classmethod
    def from_list(cls, grams: Iterable[str], source: str = "user") -> StrategicGrams:
        clusters = {}
        for g in grams:
            key = normalize_gram(g)
            if key:
                clusters[key] = key
        return cls(clusters, source=source)


@lru_cache(maxsize=1)
def builtin_grams() -> StrategicGrams:
    """The built-in lexicon (shared instance: treat it as read-only; `merged` copies)."""
    clusters = {normalize_gram(g): label for label, gs in BUILTIN_GRAMS.items() for g in gs}
    return StrategicGrams(clusters, source="builtin")


def as_grams(grams: StrategicGrams | Iterable[str] | None) -> StrategicGrams:
    if grams is None:
        return builtin_grams()
    if isinstance(grams, StrategicGrams):
        return grams
    return StrategicGrams.from_list(grams)


def _mark(mask: np.ndarray, tt: TurnTokens, intervals: list[tuple[int, int]], value) -> None:
    if not intervals:
        return
    for k, (s, e) in enumerate(tt.spans):
        if e <= s:
            continue
        for a, b in intervals:
            if s < b and e > a:
                mask[tt.start + k] = value
                break


def planning_mask(
    episode: Episode,
    tokenizer,
    grams: StrategicGrams | Iterable[str] | None = None,
    scope: str = "think",
) -> np.ndarray:
    """Bool array over episode.token_ids: True on sampled tokens that overlap a strategic gram.

    scope="think" matches inside each turn's think text only; "all" matches the whole turn.
    Tokens outside turns (prompt, tool output) are never planning tokens.
    """
    sg = as_grams(grams)
    mask = np.zeros(len(episode.token_ids), dtype=bool)
    if sg.pattern is None:
        return mask
    for turn in episode.turns:
        if turn.end <= turn.start:
            continue
        ids = episode.token_ids[turn.start : turn.end]
        # Cheap pre-check on one full decode; the exact offsets only for turns with a hit.
        if not _has_match(sg, decode_ids(tokenizer, ids), scope):
            continue
        tt = decode_turn(episode, turn, tokenizer)
        region = (0, len(tt.text)) if scope == "all" else think_region(tt.text)
        if region is None:
            continue
        hits = [(a, b) for a, b, _ in sg.find(tt.text, *region)]
        _mark(mask, tt, hits, True)
    lm = np.asarray(episode.loss_mask, dtype=bool)
    return mask & lm if len(lm) == len(mask) else mask


def _has_match(sg: StrategicGrams, text: str, scope: str) -> bool:
    region = (0, len(text)) if scope == "all" else think_region(text)
    return region is not None and bool(sg.pattern.search(text, *region))


# ---------------------------------------------------------------------------------------
# Mining strategic grams from successful rollouts
# ---------------------------------------------------------------------------------------


def think_texts(episode: Episode) -> str:
    """The think text of all turns of an episode (from Turn.text), newline-joined."""
    parts = []
    for t in episode.turns:
        r = think_region(t.text)
        if r is not None:
            parts.append(t.text[r[0] : r[1]])
    return "\n".join(parts)


def word_ngrams(text: str, n_range: tuple[int, int] = (3, 5)) -> set[str]:
    """Distinct word n-grams of text, never across sentence punctuation; no digits."""
    out: set[str] = set()
    lo, hi = n_range
    for clause in _CLAUSE_SPLIT.split(text.lower()):
        words = _WORD.findall(clause)
        for n in range(lo, hi + 1):
            for i in range(len(words) - n + 1):
                ws = words[i : i + n]
                if any(w.isdigit() or any(ch.isdigit() for ch in w) for w in ws):
                    continue
                out.add(" ".join(ws))
    return out


def _contains(a: list[str], b: list[str]) -> bool:
    """True when word sequence b occurs contiguously in a."""
    n = len(b)
    return any(a[i : i + n] == b for i in range(len(a) - n + 1))


def _lexical_clusters(cands: list[str], threshold: float) -> list[list[str]]:
    leaders: list[tuple[list[str], set[str]]] = []
    clusters: list[list[str]] = []
    for g in cands:
        ws = g.split()
        s = set(ws)
        best, best_sim = -1, threshold
        for ci, (lw, ls) in enumerate(leaders):
            if _contains(lw, ws) or _contains(ws, lw):
                sim = 1.0
            else:
                sim = len(s & ls) / len(s | ls)
            if sim >= best_sim:
                best, best_sim = ci, sim
                if sim == 1.0:
                    break
        if best < 0:
            leaders.append((ws, s))
            clusters.append([g])
        else:
            clusters[best].append(g)
    return clusters


def _embedding_clusters(
    cands: list[str], embed: Callable[[list[str]], np.ndarray], threshold: float
) -> list[list[str]]:
    vecs = np.asarray(embed(cands), dtype=np.float64)
    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    leader_idx: list[int] = []
    clusters: list[list[str]] = []
    for i, g in enumerate(cands):
        if leader_idx:
            sims = vecs[leader_idx] @ vecs[i]
            j = int(np.argmax(sims))
            if sims[j] >= threshold:
                clusters[j].append(g)
                continue
        leader_idx.append(i)
        clusters.append([g])
    return clusters


def mine_strategic_grams(
    texts: Sequence[str],
    n_range: tuple[int, int] = (3, 5),
    top_frac: float = 0.2,
    min_df: int = 2,
    max_candidates: int = 500,
    embed: Callable[[list[str]], np.ndarray] | None = None,
    threshold: float | None = None,
) -> StrategicGrams:
    """Strategic grams mined from the think texts of successful rollouts (one text each).

    Candidates are n-grams in at least `min_df` texts (the `max_candidates` most frequent);
    clusters come from `embed` (cosine >= threshold, default 0.8) when given, lexical
    clustering (threshold 0.5) otherwise; the top `top_frac` of clusters by document
    frequency (rollouts containing any member; at least one cluster) are kept, each
    labelled by its most frequent gram.
    """
    docs = [word_ngrams(t, n_range) for t in texts]
    df: Counter[str] = Counter()
    for d in docs:
        df.update(d)
    cands = [g for g, c in df.items() if c >= min_df]
    cands.sort(key=lambda g: (-df[g], -len(g.split()), g))
    cands = cands[:max_candidates]
    if not cands:
        return StrategicGrams({}, source="mined")
    if embed is not None:
        clusters = _embedding_clusters(cands, embed, 0.8 if threshold is None else threshold)
    else:
        clusters = _lexical_clusters(cands, 0.5 if threshold is None else threshold)
    scored = []
    for members in clusters:
        ms = set(members)
        cdf = sum(1 for d in docs if not ms.isdisjoint(d))
        scored.append((cdf, members))
    scored.sort(key=lambda x: (-x[0], x[1][0]))
    keep = max(1, math.ceil(top_frac * len(scored)))
    out = {}
    for _, members in scored[:keep]:
        for g in members:
            out[g] = members[0]
    return StrategicGrams(out, source="mined")


def sentence_embedder(model: str) -> Callable[[list[str]], np.ndarray] | None:
    """An embedder from sentence-transformers when it is installed (and `model` is local
    or cached); None otherwise, so mining falls back to lexical clustering."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    try:
        m = SentenceTransformer(model)
    except Exception:
        return None
    return lambda xs: np.asarray(m.encode(xs, normalize_embeddings=True))


class GramBank:
    """Keeps recent successful think texts; every `every` steps re-mines and saves the grams.

    `grams` is always the built-in lexicon merged with the latest mined set, written to
    `run_dir/strategic_grams.json` after each refresh.
    """

    def __init__(
        self,
        run_dir: str | Path | None = None,
        every: int = 20,
        window: int = 2048,
        mine: bool = True,
        embed: Callable[[list[str]], np.ndarray] | None = None,
        **mine_kwargs,
    ) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.every = max(1, every)
        self.mine = mine
        self.embed = embed
        self.mine_kwargs = mine_kwargs
        self.texts: deque[str] = deque(maxlen=window)
        self.grams = builtin_grams()
        self.last_refresh: int | None = None

    def observe(self, episodes: Iterable[Episode], step: int) -> StrategicGrams:
        for ep in episodes:
            if ep.success:
                t = think_texts(ep)
                if t:
                    self.texts.append(t)
        due = self.last_refresh is None or step - self.last_refresh >= self.every
        if self.mine and due and self.texts:
            mined = mine_strategic_grams(list(self.texts), embed=self.embed, **self.mine_kwargs)
            self.grams = builtin_grams().merged(mined)
            self.last_refresh = step
            if self.run_dir is not None:
                self.grams.save(self.run_dir / "strategic_grams.json")
        return self.grams


# ---------------------------------------------------------------------------------------
# Semantic entropy
# ---------------------------------------------------------------------------------------


def strategic_gram_counts(
    texts: Iterable[str],
    grams: StrategicGrams | Iterable[str] | None = None,
    by: str = "cluster",
) -> Counter[str]:
    """Occurrences of each gram (by="gram") or gram cluster (by="cluster") in texts."""
    sg = as_grams(grams)
    counts: Counter[str] = Counter()
    for t in texts:
        for _, _, g in sg.find(t):
            counts[sg.clusters.get(g, g) if by == "cluster" else g] += 1
    return counts


def semantic_entropy(counts: Counter[str] | dict[str, int] | Sequence[int]) -> float:
    """H = -sum p log p (nats) of strategic-gram frequencies; 0 when nothing matched."""
    vals = np.asarray(list(counts.values()) if isinstance(counts, dict) else list(counts), float)
    vals = vals[vals > 0]
    if vals.size == 0:
        return 0.0
    p = vals / vals.sum()
    return float(-(p * np.log(p)).sum())
