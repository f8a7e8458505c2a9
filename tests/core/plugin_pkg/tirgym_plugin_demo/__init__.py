"""A third-party env package: registers through the `tirgym.envs` entry-point group."""

from tirgym.envs.base import Outcome, TextEnv


class CoinEnv(TextEnv):
    description = "Say heads."

    def generate_task(self, rng, options):
        return "Heads or tails? Answer heads."

    def on_answer(self, answer):
        ok = answer.strip().lower() == "heads"
        return Outcome(reply="yes" if ok else "no", terminated=True, success=ok)

    def solve(self):
        return "<answer>heads</answer>"


def register_envs():
    import tirgym

    tirgym.register("demo/Coin-v0", "tirgym_plugin_demo:CoinEnv", tags=["plugin"], max_turns=1)
