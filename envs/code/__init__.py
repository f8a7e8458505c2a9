"""Coding envs, registered on import with a string entry point.

- tirgym/CodeTask-v0: write a function for a statement, test it with the python tool,
  submit; hidden tests run in the sandbox. Procedural tasks (difficulty easy/medium/hard)
  or an MBPP/HumanEval-style JSONL file (dataset=PATH).
"""

from tirgym.registry import register

register(
    "tirgym/CodeTask-v0",
    "tirgym.envs.code.env:CodeTaskEnv",
    tags=["code", "tool"],
    description="Write a Python function; hidden tests run in the sandbox.",
)
