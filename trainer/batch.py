"""Episodes -> padded tensors in micro-batches under a token budget.

Rows are sorted by length before packing so rows of similar length share a micro-batch
and padding stays small; a micro-batch holds at most `budget` padded tokens (rows x
longest row). Right padding, so positions of real tokens start at 0 as in generation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from tirgym.episode import Episode


@dataclass
class Row:
    ids: np.ndarray
    mask: np.ndarray
    adv: np.ndarray
    sampler_lp: np.ndarray
    old_lp: np.ndarray | None = None
    ref_lp: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def make_rows(episodes: list[Episode], advantages: list[np.ndarray]) -> list[Row]:
    rows = []
    for ep, adv in zip(episodes, advantages, strict=True):
        n = len(ep.token_ids)
        lp = np.asarray(ep.logprobs if len(ep.logprobs) == n else np.zeros(n), dtype=np.float32)
        rows.append(
            Row(
                ids=np.asarray(ep.token_ids, dtype=np.int64),
                mask=np.asarray(ep.loss_mask, dtype=np.float32),
                adv=np.asarray(adv, dtype=np.float32),
                sampler_lp=lp,
            )
        )
    return rows


def micro_batches(lengths: list[int], budget: int) -> list[list[int]]:
    """Index lists, longest rows first; each batch has rows*max_len <= budget (or one row)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    out: list[list[int]] = []
    cur: list[int] = []
    cur_max = 0
    for i in order:
        new_max = max(cur_max, lengths[i])
        if cur and new_max * (len(cur) + 1) > budget:
            out.append(cur)
            cur, cur_max = [], 0
            new_max = lengths[i]
        cur.append(i)
        cur_max = new_max
    if cur:
        out.append(cur)
    return out


def collate(rows: list[Row], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    B, T = len(rows), max(len(r) for r in rows)

    def pad(get, fill, dtype):
        out = np.full((B, T), fill, dtype=dtype)
        for i, r in enumerate(rows):
            v = get(r)
            out[i, : len(v)] = v
        return torch.from_numpy(out).to(device)

    batch = {
        "input_ids": pad(lambda r: r.ids, pad_id, np.int64),
        "attention_mask": pad(lambda r: np.ones(len(r), np.int64), 0, np.int64),
        "mask": pad(lambda r: r.mask, 0.0, np.float32),
        "adv": pad(lambda r: r.adv, 0.0, np.float32),
        "sampler_lp": pad(lambda r: r.sampler_lp, 0.0, np.float32),
    }
    if rows[0].old_lp is not None:
        batch["old_lp"] = pad(lambda r: r.old_lp, 0.0, np.float32)
    if rows[0].ref_lp is not None:
        batch["ref_lp"] = pad(lambda r: r.ref_lp, 0.0, np.float32)
    return batch
