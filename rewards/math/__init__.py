"""Math answer verification: extract the final answer and compare it with a gold answer."""

from tirgym.rewards.math.compare import VerifyPolicy
from tirgym.rewards.math.extract import extract_answer
from tirgym.rewards.math.verifier import MathVerifier, Verdict, math_equal

__all__ = ["MathVerifier", "Verdict", "VerifyPolicy", "extract_answer", "math_equal"]
