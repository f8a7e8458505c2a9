"""Supervised fine-tuning on Episode JSONL: next-token loss on mask-1 (assistant) tokens only.

Used as the warm start of a training run (`sft:` section of the train config) and alone
by `tirgym sft CONFIG`. Data: Episode JSONL files (e.g. solver demonstrations) and/or
demonstrations generated on the fly by a scripted policy through the same rollout
engine, so their token ids are exactly what this model's tokenizer produces.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tirgym.episode import Episode, load_jsonl, save_jsonl
from tirgym.errors import TirgymError
from tirgym.trainer import distributed as D
from tirgym.trainer.batch import Row, collate, micro_batches
from tirgym.trainer.losses import model_logprobs, sft_loss


def retokenize(ep: Episode, tokenizer: Any) -> Episode:
    """Rebuild token_ids/loss_mask from `messages` with this tokenizer's chat template
    (mask 1 on assistant contents), for files recorded with another tokenizer."""
    from tirgym.agents.chat import ChatRenderer

    msgs = ep.messages
    firsts = [i for i, m in enumerate(msgs) if m["role"] == "assistant"]
    if not firsts:
        raise TirgymError(f"episode {ep.task_key} has no assistant message to learn from.")
    r = ChatRenderer(tokenizer)
    ids, _ = r.prompt(msgs[: firsts[0]])
    mask = [0] * len(ids)
    i = firsts[0]
    while i < len(msgs):
        content = msgs[i]["content"]
        piece = r.encode(content)
        ids += piece
        mask += [1] * len(piece)
        j = i + 1
        while j < len(msgs) and msgs[j]["role"] != "assistant":
            j += 1
        if i + 1 < j < len(msgs):  # replies after the last turn are not part of the tokens
            piece = r.reply_ids(msgs[:i], content, "", msgs[i + 1 : j])
            ids += piece
            mask += [0] * len(piece)
        i = j
    out = Episode.from_dict(ep.to_dict())
    out.token_ids, out.loss_mask, out.logprobs = ids, mask, [0.0] * len(ids)
    return out


def _scripted_policy(spec: str, tokenizer: Any):
    from tirgym.agents import scripted

    table = {"solver": scripted.SolverPolicy, "random": scripted.RandomPolicy}
    if spec in table:
        return table[spec](tokenizer=tokenizer)
    from tirgym.agents.backends import load_policy

    return load_policy(spec, tokenizer=tokenizer)


def make_demos(cfg, tokenizer: Any, seed: int) -> list[Episode]:
    """Demonstrations from a scripted policy on the demo env mix (seeds apart from RL's)."""
    from tirgym.agents import Task, rollout
    from tirgym.trainer.tasks import expand_mix

    d = cfg.sft.demos
    entries = expand_mix(d.envs or cfg.envs)
    w = np.array([e.weight for e in entries])
    rng = np.random.default_rng([seed, 99])
    which = rng.choice(len(entries), size=d.episodes, p=w / w.sum())
    tasks = []
    for i in which:
        e = entries[int(i)]
        lo, hi = e.seeds
        s = lo + (d.seed_offset + int(rng.integers(0, max(1, hi - lo)))) % (hi - lo)
        tasks.append(Task(e.id, s, dict(e.kwargs), e.name))
    policy = _scripted_policy(d.policy, tokenizer)
    params, limits = cfg.rollout.engine_args(seed)
    eps = rollout(policy, tasks, group_size=1, params=params, limits=limits)
    if d.only_success:
        eps = [e for e in eps if e.success]
    return eps


def sft_episodes(cfg, tokenizer: Any, seed: int) -> list[Episode]:
    s = cfg.sft
    eps: list[Episode] = []
    for path in s.data:
        if not Path(path).exists():
            raise TirgymError(f"sft.data: file not found: {path}")
        got = load_jsonl(path)
        eps += [retokenize(e, tokenizer) for e in got] if s.retokenize else got
    if s.demos is not None:
        eps += make_demos(cfg, tokenizer, seed)
    eps = [e for e in eps if sum(e.loss_mask) > 0 and len(e.loss_mask) == len(e.token_ids)]
    if not eps:
        raise TirgymError(
            "SFT has no usable episodes (none with mask-1 tokens); check sft.data / sft.demos."
        )
    vocab = len(tokenizer)
    if max(max(e.token_ids) for e in eps) >= vocab:
        raise TirgymError(
            "SFT episodes hold token ids outside this tokenizer's vocabulary: they were recorded with "
            "another tokenizer; set sft.retokenize=true."
        )
    return eps


def sft_train(
    model,
    tokenizer: Any,
    episodes: list[Episode],
    s,
    device: torch.device,
    dist: D.DistInfo | None = None,
    seed: int = 0,
    say: Callable[[str], None] = print,
    precision: str = "fp32",
    logprob_chunk: int = 1024,
) -> dict[str, float]:
    """Train in place; returns {"sft_loss_first", "sft_loss_last", "sft_steps", ...}."""
    dist = dist or D.DistInfo()
    pad_id = int(tokenizer.pad_token_id)
    rows = [
        Row(
            ids=np.asarray(e.token_ids, np.int64),
            mask=np.asarray(e.loss_mask, np.float32),
            adv=np.zeros(len(e.token_ids), np.float32),
            sampler_lp=np.zeros(len(e.token_ids), np.float32),
        )
        for e in episodes
    ]
    steps_per_epoch = max(1, int(np.ceil(len(rows) / s.batch_size)))
    total = int(np.ceil(s.epochs * steps_per_epoch))
    if s.max_steps:
        total = min(total, s.max_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / s.warmup_steps) if s.warmup_steps else 1.0
    )
    rng = np.random.default_rng([seed, 31])
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if precision == "bf16" and device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    model.train()
    losses: list[float] = []
    order: list[int] = []
    t0 = time.perf_counter()
    tokens = 0.0
    for step in range(total):
        if len(order) < s.batch_size:
            order += list(rng.permutation(len(rows)))
        batch, order = order[: s.batch_size], order[s.batch_size :]
        mine = [rows[i] for i in batch[dist.rank :: dist.world]]
        n_tok = D.all_reduce_sum([float(sum(r.mask.sum() for r in mine))], dist, device)[0]
        total_loss = 0.0
        for idx in micro_batches([len(r) for r in mine], s.micro_batch_tokens):
            b = collate([mine[i] for i in idx], pad_id, device)
            with autocast:
                lp, _ = model_logprobs(
                    model, b["input_ids"], b["attention_mask"], chunk=logprob_chunk, only=b["mask"]
                )
            loss = sft_loss(lp.float(), b["mask"], num_tokens=n_tok)
            loss.backward()
            total_loss += float(loss.detach())
            tokens += float(b["attention_mask"].sum())
        D.all_reduce_grads(model, dist)
        if s.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, s.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss_all = D.all_reduce_sum([total_loss], dist, device)[0]
        losses.append(loss_all)
        if step == 0 or (step + 1) % max(1, total // 10) == 0 or step == total - 1:
            say(f"sft step {step + 1:>4}/{total}  loss {loss_all:.4f}")
    model.eval()
    wall = time.perf_counter() - t0
    return {
        "sft_episodes": float(len(rows)),
        "sft_steps": float(total),
        "sft_loss_first": losses[0] if losses else float("nan"),
        "sft_loss_last": losses[-1] if losses else float("nan"),
        "sft_wall_s": wall,
        "sft_tokens_per_s": tokens / max(wall, 1e-9),
    }


def run_sft(
    model, tokenizer: Any, cfg, device: torch.device, dist: D.DistInfo | None = None, say=print
) -> dict:
    """The train config's warm start: gather data, train, write the demos used to the run dir."""
    dist = dist or D.DistInfo()
    eps = sft_episodes(cfg, tokenizer, cfg.seed)
    if dist.main:
        save_jsonl(cfg.run_dir() / "sft_data.jsonl", eps)
    say(f"SFT on {len(eps)} episodes ({sum(sum(e.loss_mask) for e in eps)} target tokens)")
    return sft_train(
        model,
        tokenizer,
        eps,
        cfg.sft,
        device,
        dist,
        seed=cfg.seed,
        say=say,
        precision=cfg.update.precision,
        logprob_chunk=cfg.update.logprob_chunk,
    )


def sft_main(config, overrides: list[str] | None = None) -> Path:
    """`tirgym sft CONFIG`: only the `sft:` section of a train config; writes run_dir/sft_model."""
    from tirgym.trainer.checkpoint import save_model
    from tirgym.trainer.config import check_envs, dump_config, load_config
    from tirgym.trainer.model import load_model, load_tokenizer, pick_device, resolve_model_path

    cfg = config if not isinstance(config, str | Path) else load_config(config, overrides)
    if cfg.sft is None:
        raise TirgymError(
            "the config has no `sft:` section; add one (data: [...] or demos: {...})."
        )
    check_envs(cfg)
    dist = D.init_distributed(cfg.backend.device)
    device = pick_device(cfg.backend.device, dist.local_rank)
    run_dir = cfg.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, run_dir / "config.yaml")
    path = resolve_model_path(cfg, run_dir)
    torch.manual_seed(cfg.seed)
    tok = load_tokenizer(path)
    model = load_model(path, device, cfg.update.gradient_checkpointing)
    D.broadcast_params(model, dist)
    run_sft(model, tok, cfg, device, dist, say=print if dist.main else (lambda _: None))
    out = run_dir / "sft_model"
    if dist.main:
        save_model(model, tok, out)
        print(f"SFT model: {out}")
    D.destroy(dist)
    return out
