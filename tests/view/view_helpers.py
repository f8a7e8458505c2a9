"""Hand-built episodes for the viewer tests."""

from tirgym.episode import Episode, Span, Turn


def make_episode(i: int, *, group: str = "g0", step: int | None = 1, text: str = "") -> Episode:
    """A hand-built two-turn episode: a think + tool call turn, a tool reply, an answer turn."""
    t1 = '<think>plan: try the middle</think><tool_call>{"name": "py", "arguments": {}}</tool_call>'
    t2 = f"<answer>{i}</answer>"
    ids = list(range(100, 120))
    mask = [0] * 6 + [1] * 5 + [0] * 4 + [1] * 5
    info = {"train_step": step} if step is not None else {}
    return Episode(
        env_id="tirgym/GuessNumber-v0" if i % 2 == 0 else "tirgym/Maze-v0",
        seed=i,
        group_id=group,
        token_ids=ids,
        loss_mask=mask,
        logprobs=[-0.5 * m for m in mask],
        spans=[
            Span(0, 3, "system"),
            Span(3, 6, "user"),
            Span(6, 11, "assistant"),
            Span(11, 15, "tool"),
            Span(15, 20, "assistant"),
        ],
        turns=[
            Turn(
                6,
                11,
                text=t1,
                reward=0.1,
                reward_components={"tool": 0.1},
                action="tool_call",
                tool_calls=1,
                tool_errors=int(i % 3 == 0),
                reply_role="tool",
            ),
            Turn(
                15,
                20,
                text=t2,
                action="answer",
                format_errors=["Empty <answer>"] if i % 5 == 0 else [],
            ),
        ],
        outcome_reward=float(i % 2),
        success=i % 2 == 1,
        terminated=True,
        stop_reason="answer",
        messages=[
            {"role": "system", "content": "You guess numbers."},
            {"role": "user", "content": f"Guess a number. {text}"},
            {"role": "assistant", "content": t1},
            {"role": "tool", "content": "4"},
            {"role": "assistant", "content": t2},
        ],
        info=info,
    )
