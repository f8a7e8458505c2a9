"""Printing an episode so sampled tokens, masked (prompt/env) tokens and rewards stand apart.

In a terminal: sampled tokens green, masked tokens dim, rewards yellow. Otherwise
(pipes, files, CI logs): sampled text is wrapped in ⟦...⟧ markers.
"""

from __future__ import annotations

from typing import Any

from tirgym.episode import Episode

OPEN, CLOSE = "⟦", "⟧"


def _header(ep: Episode, index: int) -> str:
    return (
        f"== episode {index}: {ep.env_id} seed {ep.seed} group {ep.group_id} | "
        f"success={ep.success} outcome={ep.outcome_reward:+.3f} turns={len(ep.turns)} "
        f"stop={ep.stop_reason} trainable={ep.trainable} sampled_tokens={ep.num_sampled_tokens} =="
    )


def _turn_line(k: int, t: Any) -> str:
    comps = ", ".join(f"{n}={v:+.3f}" for n, v in t.reward_components.items()) or "none"
    errs = f" format_errors={len(t.format_errors)}" if t.format_errors else ""
    return f"  ↳ turn {k + 1}: reward {t.reward:+.3f} [{comps}] action={t.action} finish={t.finish_reason}{errs}"


def render_episode(ep: Episode, tokenizer: Any = None, *, color: bool, index: int = 0):
    """A rich Text (color) or plain string (markers) of one episode."""
    from rich.text import Text

    out = Text()
    out.append(_header(ep, index) + "\n", style="bold")
    turn_end = {t.end: (k, t) for k, t in enumerate(ep.turns)}
    if ep.token_ids and tokenizer is not None:
        for s in ep.spans:
            text = tokenizer.decode(ep.token_ids[s.start : s.end], skip_special_tokens=False)
            sampled = bool(ep.loss_mask[s.start]) if s.end > s.start else False
            if sampled:
                out.append(text if color else f"{OPEN}{text}{CLOSE}", style="bold green")
            else:
                out.append(text, style="dim")
            if s.end in turn_end and sampled:
                k, t = turn_end[s.end]
                out.append("\n" + _turn_line(k, t) + "\n", style="yellow")
    else:
        turns = iter(enumerate(ep.turns))
        for m in ep.messages:
            if m["role"] == "assistant":
                body = m["content"] if color else f"{OPEN}{m['content']}{CLOSE}"
                out.append(f"[assistant]\n{body}\n", style="bold green")
                nxt = next(turns, None)
                if nxt:
                    out.append(_turn_line(*nxt) + "\n", style="yellow")
            else:
                out.append(f"[{m['role']}]\n{m['content']}\n", style="dim")
    if ep.token_ids and ep.messages and ep.messages[-1]["role"] != "assistant":
        out.append(
            f"\n[final {ep.messages[-1]['role']} reply, not in tokens]\n{ep.messages[-1]['content']}\n",
            style="dim",
        )
    return out if color else out.plain


def print_episodes(
    episodes: list[Episode], tokenizer: Any = None, *, color: bool | None = None
) -> None:
    import sys

    from rich.console import Console

    if color is None:
        color = sys.stdout.isatty()
    console = Console(highlight=False, force_terminal=color, no_color=not color, soft_wrap=True)
    for i, ep in enumerate(episodes):
        r = render_episode(ep, tokenizer, color=color, index=i)
        if color:
            console.print(r)
        else:
            sys.stdout.write(r + "\n")
