"""GRPO update throughput and MFU of the trainer on a ~0.5B Qwen2-shaped model (random init).

    python benchmarks/bench_train.py            # one GPU, bf16 autocast, < 5 minutes
    python benchmarks/bench_train.py --tiny     # CPU smoke run of the same path (seconds)

Phases, all in one process:
1. end to end: `Trainer` runs 2 real GRPO steps (hf backend rollouts on GuessNumber, the
   tiny BPE tokenizer, the 0.5B body) and reports rollout and update tokens/s.
2. update: synthetic GRPO batches (full 151,936-token vocab, prompt 256 + response 512
   tokens, group advantages from random rewards) through `Trainer.update`, timed over a
   few optimizer steps: update tokens/s and model FLOPs utilisation (MFU).
3. baseline, measured in the same run: the textbook update that materialises the logits
   of every position (`model(...).logits` + log_softmax) on the same batch. The ratio
   trainer/baseline is printed.
Nothing is downloaded. MFU uses the dense bf16 peak of the detected GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PEAK_BF16 = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 125e12,
    "L4": 121e12,
}

QWEN2_05B = dict(
    hidden_size=896, num_layers=24, num_heads=14, num_kv_heads=2, intermediate_size=4864
)
TINY = dict(hidden_size=128, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=256)


def log(msg: str) -> None:
    print(msg, flush=True)


def peak_flops(device: torch.device) -> tuple[float | None, str]:
    if device.type != "cuda":
        return None, "cpu"
    name = torch.cuda.get_device_name(device)
    for key, v in PEAK_BF16.items():
        if key in name:
            return v, name
    return None, name


def build(out: Path, shape: dict, vocab: int | None) -> Path:
    """A random Qwen2 model: the tiny tokenizer (for real rollouts) and, when `vocab` is
    given, an embedding/lm head of that size (for the synthetic update phase)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tirgym.agents.models import build_tiny_model

    path = build_tiny_model(out, seed=0, vocab_size=2048, **{k: v for k, v in shape.items()})
    if vocab is None:
        return path
    cfg = Qwen2Config.from_pretrained(path)
    cfg.vocab_size = vocab
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    model.save_pretrained(path)
    return path


def flops_per_update(
    n_layers: int, hidden: int, body_params: int, vocab: int, lengths, masked: int
) -> float:
    """Training FLOPs (forward + backward = 3x forward) of one pass over the batch."""
    tokens = sum(lengths)
    dense = 6.0 * body_params * tokens
    attn = sum(6.0 * n_layers * hidden * L * L for L in lengths)  # causal QK^T and AV, fwd+bwd
    head = 6.0 * vocab * hidden * masked
    return dense + attn + head


def synthetic_rows(
    n_groups: int, group: int, prompt: int, response: int, vocab: int, seed: int = 0
):
    from tirgym.episode import Episode, Turn
    from tirgym.trainer.advantages import AdvantageConfig, compute_advantages
    from tirgym.trainer.batch import make_rows

    rng = np.random.default_rng(seed)
    eps = []
    for g in range(n_groups):
        p = rng.integers(0, vocab, prompt).tolist()
        for _ in range(group):
            r = int(rng.integers(response // 2, response + 1))
            ids = p + rng.integers(0, vocab, r).tolist()
            ep = Episode(
                env_id="bench",
                seed=g,
                group_id=f"bench#{g}",
                token_ids=ids,
                loss_mask=[0] * prompt + [1] * r,
                logprobs=[0.0] * prompt + [-5.0] * r,
                turns=[Turn(start=prompt, end=prompt + r)],
                outcome_reward=float(rng.random() < 0.5),
            )
            eps.append(ep)
    advs = compute_advantages(eps, AdvantageConfig(estimator="grpo"))
    return make_rows(eps, advs)


def naive_update(model, rows, pad_id, device, budget, params, autocast) -> None:
    """Baseline: logits of every position materialised, log_softmax over the full vocab."""
    from tirgym.trainer.batch import collate, micro_batches
    from tirgym.trainer.losses import policy_loss

    n_tok = float(sum(r.mask.sum() for r in rows))
    for idx in micro_batches([len(r) for r in rows], budget):
        b = collate([rows[i] for i in idx], pad_id, device)
        with autocast():
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        logp = torch.log_softmax(logits.float(), -1)[:, :-1].gather(
            -1, b["input_ids"][:, 1:, None]
        )[..., 0]
        lp = torch.cat([torch.zeros_like(logp[:, :1]), logp], 1)
        loss, _ = policy_loss(lp, lp.detach(), b["adv"], b["mask"], params, num_tokens=n_tok)
        loss.backward()
        del logits, logp, lp, loss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="CPU-sized model (smoke run)")
    ap.add_argument(
        "--steps", type=int, default=3, help="timed optimizer steps in the update phase"
    )
    ap.add_argument("--groups", type=int, default=None)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--micro-batch-tokens", type=int, default=None)
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--out", default=None, help="write results JSON here")
    args = ap.parse_args()

    from tirgym.trainer.loop import Trainer

    cuda = torch.cuda.is_available() and not args.tiny
    device = torch.device("cuda" if cuda else "cpu")
    shape = TINY if args.tiny else QWEN2_05B
    vocab = 4096 if args.tiny else 151936
    prompt, response = (32, 64) if args.tiny else (256, 512)
    groups = args.groups or (2 if args.tiny else 8)
    budget = args.micro_batch_tokens or (2048 if args.tiny else 16384)
    peak, dev_name = peak_flops(device)
    log(
        f"== bench_train: device {dev_name}, {'tiny' if args.tiny else 'Qwen2-0.5B'} shape {shape}, "
        f"bf16 autocast {'on' if cuda else 'off'} =="
    )
    results: dict = {"device": dev_name, "shape": shape}
    t_all = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base_cfg = {
            "backend": {"device": "cuda" if cuda else "cpu"},
            "update": {"precision": "bf16" if cuda else "fp32", "micro_batch_tokens": budget},
            "optim": {"lr": 1e-6},
            "eval": {"before": False, "after": False},
            "checkpoint": {"final": False},
            "log": {"progress": False, "plot": False, "save_episodes": False, "tensorboard": False},
            "envs": [{"id": "tirgym/GuessNumber-v0", "kwargs": {"low": 1, "high": 100}}],
        }

        # ---- 1. end to end: real rollouts + update -----------------------------------
        if not args.skip_e2e:
            t = time.perf_counter()
            path = build(tmp / "e2e", shape, None)
            log(
                f"[e2e] built model + tokenizer in {time.perf_counter() - t:.1f}s; 2 GRPO steps on GuessNumber"
            )
            cfg = {
                **base_cfg,
                "model": str(path),
                "steps": 2,
                "output_dir": str(tmp / "run_e2e"),
                "rollout": {
                    "group_size": args.group_size,
                    "tasks_per_step": groups,
                    "max_new_tokens": 64,
                    "max_total_tokens": 2048,
                },
            }
            tr = Trainer(cfg, quiet=True)
            tr.run()
            rows = [
                json.loads(x) for x in (tmp / "run_e2e" / "metrics.jsonl").read_text().splitlines()
            ]
            last = rows[-1]
            for k in (
                "rollout_tokens_per_s",
                "update_tokens_per_s",
                "rollout_s",
                "update_s",
                "logprob_gap_mean",
            ):
                log(f"[e2e] {k:<22} {last[k]:>12.3f}")
            results["e2e"] = {
                k: last[k]
                for k in (
                    "rollout_tokens_per_s",
                    "update_tokens_per_s",
                    "rollout_s",
                    "update_s",
                    "logprob_gap_mean",
                    "response_tokens_mean",
                )
            }
            del tr
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()

        # ---- 2. update throughput on synthetic GRPO batches ---------------------------
        t = time.perf_counter()
        path = build(tmp / "upd", shape, vocab)
        log(f"[update] built {vocab}-vocab model in {time.perf_counter() - t:.1f}s")
        cfg = {
            **base_cfg,
            "model": str(path),
            "steps": args.steps + 1,
            "output_dir": str(tmp / "run_upd"),
        }
        tr = Trainer(cfg, quiet=True)
        tr.setup()
        model = tr.model
        body = sum(
            p.numel()
            for n, p in model.named_parameters()
            if "embed_tokens" not in n and "lm_head" not in n
        )
        total = sum(p.numel() for p in model.parameters())
        rows = synthetic_rows(groups, args.group_size, prompt, response, vocab)
        lengths = [len(r) for r in rows]
        masked = int(sum(r.mask.sum() for r in rows))
        fl = flops_per_update(
            model.config.num_hidden_layers, model.config.hidden_size, body, vocab, lengths, masked
        )
        log(
            f"[update] {total / 1e6:.0f}M params ({body / 1e6:.0f}M non-embedding); batch {len(rows)} seqs, "
            f"{sum(lengths)} tokens ({masked} trained), micro-batch budget {budget} tokens"
        )

        def sync():
            if cuda:
                torch.cuda.synchronize()

        tr.update(rows, 0)  # warm-up (allocator, kernels)
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        for s in range(args.steps):
            tr.update(rows, s + 1)
        sync()
        dt = (time.perf_counter() - t) / args.steps
        tps = sum(lengths) / dt
        mfu = fl / dt / peak if peak else None
        mem = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        log(
            f"[update] trainer : {dt:.3f} s/step  {tps:>10.0f} tokens/s  "
            f"{fl / dt / 1e12:.2f} TFLOP/s  MFU {'%.1f%%' % (100 * mfu) if mfu else 'n/a'}"
            + (f"  peak mem {mem:.1f} GiB" if mem else "")
        )
        results["update"] = {
            "s_per_step": dt,
            "tokens_per_s": tps,
            "tflops": fl / dt / 1e12,
            "mfu": mfu,
            "peak_mem_gib": mem,
            "tokens": sum(lengths),
            "trained_tokens": masked,
        }

        # ---- 3. baseline: full-logits update on the same batch --------------------------
        autocast = (
            (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
            if cuda
            else contextlib.nullcontext
        )
        tr.model.train()
        try:
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            naive_update(
                model, rows, tr.pad_id, device, budget, tr.loss_params, autocast
            )  # warm-up
            tr.optimizer.zero_grad(set_to_none=True)
            sync()
            t = time.perf_counter()
            for _ in range(args.steps):
                naive_update(model, rows, tr.pad_id, device, budget, tr.loss_params, autocast)
                tr.optimizer.step()
                tr.optimizer.zero_grad(set_to_none=True)
            sync()
            bdt = (time.perf_counter() - t) / args.steps
            bmem = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
            log(
                f"[update] baseline: {bdt:.3f} s/step  {sum(lengths) / bdt:>10.0f} tokens/s (full logits)"
                + (f"  peak mem {bmem:.1f} GiB" if bmem else "")
            )
            log(f"[update] ratio trainer/baseline tokens/s: {bdt / dt:.2f}x")
            results["baseline"] = {
                "s_per_step": bdt,
                "tokens_per_s": sum(lengths) / bdt,
                "peak_mem_gib": bmem,
                "speedup": bdt / dt,
            }
        except torch.OutOfMemoryError:
            log(
                "[update] baseline: out of memory with full logits (the trainer's chunked path fits)"
            )
            results["baseline"] = {"oom": True}
    results["wall_s"] = time.perf_counter() - t_all
    log(f"== done in {results['wall_s']:.0f}s ==")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
