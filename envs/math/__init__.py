"""Math envs, registered on import with string entry points (nothing heavy loads).

- tirgym/MathAnswer-v0: one turn, answer in \\boxed{} or <answer>, reward 1/0 by the verifier.
- tirgym/MathTIR-v0: python tool calls in a per-episode sandbox session, then an answer.

Both take family ("mixed" or a generator family), difficulty (easy/medium/hard) or
dataset (a GSM8K/MATH-format file, see generators.load_math_dataset).
"""

from tirgym.registry import register

register(
    "tirgym/MathAnswer-v0",
    "tirgym.envs.math.envs:MathAnswerEnv",
    tags=["math"],
    description="Single-turn math: answer in \\boxed{} or <answer>, checked by the verifier.",
)
register(
    "tirgym/MathTIR-v0",
    "tirgym.envs.math.envs:MathTIREnv",
    tags=["math", "tool"],
    description="Tool-integrated math: run python in a sandbox session, then answer.",
)
