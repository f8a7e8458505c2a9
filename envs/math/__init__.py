"""Registered on import; see tirgym.envs."""
