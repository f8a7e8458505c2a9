"""Generation throughput: the hf backend vs the vLLM backend on the same model and prompts.

    python benchmarks/bench_generation.py                      # tiny model, CPU
    python benchmarks/bench_generation.py --model PATH --device cuda --dtype bfloat16

Prompts are real env prompts (chat-templated first turns of registered envs). Each backend
gets one untimed warm-up call, then the timed batch; tokens/s counts the tokens actually
sampled (a row can end early at an end-of-turn token). Stop strings are off so rows run
to max_new_tokens as far as the model lets them. Engine start is reported apart. On CPU the
hf backend runs single-threaded by default (--threads): on a loaded 2-core machine two torch
threads were 15x slower than one for the tiny model.
"""

from __future__ import annotations

import argparse
import tempfile
import time


def env_prompts(tokenizer, n: int) -> list[list[int]]:
    import tirgym
    from tirgym.agents.chat import ChatRenderer

    ids = [
        e
        for e in ("tirgym/GuessNumber-v0", "tirgym/Sokoban-v0", "tirgym/MathTIR-v0")
        if e in tirgym.env_ids()
    ]
    renderer = ChatRenderer(tokenizer, None)
    out = []
    for i in range(n):
        env = tirgym.make(ids[i % len(ids)])
        obs, info = env.reset(seed=i)
        msgs = [
            {"role": "system", "content": info.get("system_prompt", "")},
            {"role": "user", "content": obs},
        ]
        out.append(list(renderer.prompt(msgs)[0]))
        env.close()
    return out


def timed(policy, prompts, params) -> tuple[int, float]:
    policy.generate(prompts[:2], params.replace(max_new_tokens=4))  # warm-up
    t = time.perf_counter()
    comps = policy.generate(prompts, params)
    dt = time.perf_counter() - t
    return sum(len(c.token_ids) for c in comps), dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="HF checkpoint dir (default: a fresh tiny model)")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="cpu", help="hf backend device (cpu|cuda)")
    ap.add_argument("--max-model-len", type=int, default=2048)
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for the hf backend (1: fastest for small models on shared cores)",
    )
    args = ap.parse_args()

    import torch

    if args.device == "cpu" and args.threads > 0:
        torch.set_num_threads(args.threads)

    from tirgym.agents import SamplingParams
    from tirgym.agents.hf_backend import HFPolicy

    path = args.model
    if path is None:
        from tirgym.agents.models import build_tiny_model

        path = str(build_tiny_model(tempfile.mkdtemp(prefix="bench-gen-"), seed=0))
    params = SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens, stop=(), seed=0)

    hf = HFPolicy.from_pretrained(path, device=args.device, dtype=args.dtype)
    prompts = env_prompts(hf.tokenizer, args.prompts)
    mean_len = sum(map(len, prompts)) / len(prompts)
    print(
        f"model {path}: {len(prompts)} prompts (mean {mean_len:.0f} tokens), max_new_tokens {args.max_new_tokens}, {args.dtype}"
    )
    rows = [("hf", *timed(hf, prompts, params), 0.0)]
    del hf

    if not args.skip_vllm:
        from tirgym.agents.vllm_backend import VLLMPolicy
        from tirgym.errors import TirgymError

        try:
            t = time.perf_counter()
            vp = VLLMPolicy.from_pretrained(
                path, dtype=args.dtype, max_model_len=args.max_model_len
            )
            start = time.perf_counter() - t
            rows.append(("vllm", *timed(vp, prompts, params), start))
            vp.close()
        except TirgymError as e:
            print(f"vllm: skipped ({e})")

    print(f"{'backend':8} {'tokens':>8} {'seconds':>9} {'tokens/s':>10} {'engine start s':>15}")
    for name, tokens, dt, start in rows:
        print(f"{name:8} {tokens:8d} {dt:9.2f} {tokens / dt:10.1f} {start:15.1f}")
    if len(rows) == 2:
        ratio = (rows[1][1] / rows[1][2]) / (rows[0][1] / rows[0][2])
        print(f"ratio vllm/hf tokens/s: {ratio:.2f}x")


if __name__ == "__main__":
    main()
