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
            s = tirgym.get_suite(name)
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
    """Show an env's description, tools, turn limit and reward spec."""
    import tirgym

    meta = tirgym.env_meta(env_id)
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
        action = "\n".join(lines)
        if "<" not in action:  # let humans type a bare move
            action = f"<answer>{action}</answer>"
        obs, reward, terminated, truncated, inf = env.step(action)
        total += reward
        typer.echo(f"[{inf['role']}] {obs}\n(reward {reward:+.3f}: {inf['reward_components']})")
        if terminated or truncated:
            verdict = "WON" if inf.get("success") else "LOST"
            typer.echo(f"== {verdict}: outcome {inf['outcome_reward']:.3f}, total reward {total:.3f}, "
                       f"{turn} turns ({inf.get('stop_reason')}) ==")
            break
    env.close()


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
# ---- trainer (tirgym.trainer): train, sft, analyze ------------------------------------
# ---- eval (tirgym.eval): eval, compare ------------------------------------------------
# Each area adds its commands below its own header, importing its module inside the
# function body so that `tirgym list` never pays for torch.


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line and exit code 2."""
    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except TirgymError as e:
        typer.echo(f"error: {e}", err=True)
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


