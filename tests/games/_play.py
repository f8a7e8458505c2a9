"""The one helper the game tests share: play an episode with the env's own solver."""


def play(env, seed: int) -> dict:
    """Reset to `seed`, play `solve()` turns to the end; the last step's info."""
    env.reset(seed=seed)
    while True:
        _, _, terminated, truncated, info = env.step(env.unwrapped.solve())
        if terminated or truncated:
            return info
