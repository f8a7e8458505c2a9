"""tirgym: a gym for training and evaluating language-model agents with RL.

    import tirgym
    env = tirgym.make("tirgym/GuessNumber-v0")
    prompt, info = env.reset(seed=1)
    reply, reward, terminated, truncated, info = env.step("<answer>50</answer>")
"""

from tirgym.env_spec import EnvSpec
from tirgym.errors import TirgymError
from tirgym.registry import (
    HELDOUT_SEED_BASE,
    EnvMeta,
    Suite,
    SuiteEntry,
    env_ids,
    env_kwargs,
    env_meta,
    get_suite,
    list_envs,
    load_suite_file,
    make,
    register,
    register_suite,
    suite_names,
    validate_env_kwargs,
)

__version__ = "0.1.0"

__all__ = [
    "HELDOUT_SEED_BASE",
    "EnvMeta",
    "EnvSpec",
    "Suite",
    "SuiteEntry",
    "TirgymError",
    "env_ids",
    "env_kwargs",
    "env_meta",
    "get_suite",
    "list_envs",
    "load_suite_file",
    "make",
    "register",
    "register_suite",
    "suite_names",
    "validate_env_kwargs",
]

# Built-in envs register with string entry points: cheap, nothing heavy is imported.
import tirgym.envs  # noqa: E402,F401
from tirgym.registry import load_plugins  # noqa: E402

# Installed packages' `tirgym.envs` entry points register now, once, so that
# `gymnasium.make` finds their envs after a bare `import tirgym`.
load_plugins()
