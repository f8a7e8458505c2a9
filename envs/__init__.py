"""Built-in environments. Each family's package registers its envs on import.

Registration uses string entry points, so importing this package stays cheap: a game's
module is only imported when that game is made.
"""

from tirgym.envs.base import Outcome, TextEnv
from tirgym.registry import register

register(
    "tirgym/GuessNumber-v0",
    "tirgym.envs.guess_number:GuessNumberEnv",
    tags=["game", "toy"],
    max_turns=10,
    description="Guess a secret integer; the env answers higher/lower.",
)

import tirgym.envs.code  # noqa: E402,F401
import tirgym.envs.games  # noqa: E402,F401
import tirgym.envs.math  # noqa: E402,F401

__all__ = ["Outcome", "TextEnv"]
