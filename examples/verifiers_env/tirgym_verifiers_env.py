"""The verifiers package for tirgym envs: `vf-eval tirgym-verifiers-env -a '{"env_id": ...}'`.

verifiers imports a pip package and calls its `load_environment(**args)`; the adapter
itself lives in tirgym (tirgym.integrations.verifiers), so it is versioned and tested with
the envs it wraps.
"""

from tirgym.integrations.verifiers import TirgymEnv, load_environment, tirgym_reward

__all__ = ["TirgymEnv", "load_environment", "tirgym_reward"]
