"""tirgym's math verifier against HuggingFace Math-Verify on the same labelled corpora.

Prints accuracy, false positives/negatives and verifications per second for both, in one
process, plus the throughput ratio. Math-Verify is a benchmark-only dependency
(``pip install math-verify``); without it only tirgym's figures are printed.

    .venv/bin/python benchmarks/bench_math_verify.py [--corpus PATH ...] [--repeat N]

It ends with the time `extract_answer` and `parse_turn` take on 1 MB adversarial inputs.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from pathlib import Path

from tirgym.rewards.math import MathVerifier
from tirgym.rewards.math.extract import has_answer_marker

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
DEFAULT_CORPORA = [DATA / "math_verify_corpus.jsonl", DATA / "math_verify_heldout.jsonl"]
PATHOLOGICAL = ["9^{9^{9^9}}", "10^{10^{10}}!", "1" * 100_000, "(" * 50_000 + ")" * 50_000]


def load(paths: list[Path]) -> list[dict]:
    rows = []
    for path in paths:
        with open(path) as f:
            rows.extend(json.loads(line) for line in f if line.strip())
    return rows


def score(name: str, rows: list[dict], verdicts: list[bool], seconds: float) -> dict:
    fp = sum(1 for r, v in zip(rows, verdicts, strict=True) if v and not r["label"])
    fn = sum(1 for r, v in zip(rows, verdicts, strict=True) if not v and r["label"])
    wrong = Counter(r["category"] for r, v in zip(rows, verdicts, strict=True) if v != r["label"])
    acc = 1 - (fp + fn) / len(rows)
    rate = len(rows) / seconds
    print(
        f"{name:<12} accuracy {acc:6.1%}  FP {fp:3d}  FN {fn:3d}  "
        f"{rate:8.1f} verifications/s  ({seconds:.2f} s for {len(rows)})"
    )
    if wrong:
        print("             mistakes by category:", dict(wrong.most_common()))
    return {"accuracy": acc, "fp": fp, "fn": fn, "rate": rate}


def run_tirgym(rows: list[dict], repeat: int) -> tuple[list[bool], float]:
    MathVerifier().verify(prediction="1/2", gold="0.5")  # warm-up: imports, first mpmath context
    MathVerifier().verify(prediction="x>1", gold="(1,\\infty)")
    best = float("inf")
    verdicts: list[bool] = []
    for _ in range(repeat):
        verifier = MathVerifier()  # cold gold cache each round
        start = time.perf_counter()
        verdicts = [verifier.verify(prediction=r["prediction"], gold=r["gold"]).equal for r in rows]
        best = min(best, time.perf_counter() - start)
    return verdicts, best


def run_math_verify(rows: list[dict], repeat: int) -> tuple[list[bool], float] | None:
    try:
        from math_verify import parse, verify
    except ImportError:
        print("math-verify is not installed: pip install math-verify (benchmark only)")
        return None

    def one(pred: str, gold: str) -> bool:
        # Give Math-Verify its preferred input: the gold in $...$, bare answers in \boxed{}.
        pred_in = pred if has_answer_marker(pred) else "\\boxed{" + pred + "}"
        try:
            return bool(verify(parse("$" + gold + "$"), parse(pred_in)))
        except Exception:
            return False

    one("1/2", "0.5")
    best = float("inf")
    verdicts: list[bool] = []
    for _ in range(repeat):
        start = time.perf_counter()
        verdicts = [one(r["prediction"], r["gold"]) for r in rows]
        best = min(best, time.perf_counter() - start)
    return verdicts, best


def pathological_from_thread() -> None:
    verifier = MathVerifier()
    for text in PATHOLOGICAL:
        result: dict = {}

        def work(text: str = text, result: dict = result) -> None:
            start = time.perf_counter()
            result["verdict"] = verifier.verify(prediction=text, gold="12")
            result["seconds"] = time.perf_counter() - start

        thread = threading.Thread(target=work)
        thread.start()
        thread.join(timeout=30)
        shown = text if len(text) < 30 else f"<{len(text)} chars>"
        print(
            f"  worker thread: {shown:<16} -> {result['seconds'] * 1000:7.1f} ms ({result['verdict'].reason})"
        )


ADVERSARIAL_EXTRACT = {
    "'final answer is a' + spaces + 'b'": "final answer is a" + " " * 1_000_000 + "b",
    "'#### a' + spaces + 'b'": "#### a" + " " * 1_000_000 + "b",
    "'<answer>' x 125k": "<answer>" * 125_000,
    "'\\boxed{' x 143k": "\\boxed{" * 142_857,
}
ADVERSARIAL_TURNS = {
    "'```python' x 111k": "```python" * 111_112,
    "'<answer>x</answer>' x 56k": "<answer>x</answer>" * 55_556,
}


def _best_of(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def adversarial_inputs() -> None:
    """1 MB inputs that made the old regexes and scanner quadratic, against a benign input of
    the same size (prose with the answer at the end) measured here as the baseline."""
    from tirgym.protocol import TurnFormat, parse_turn
    from tirgym.rewards.math import extract_answer

    prose = "word " * 200_000
    benign_extract = prose + "So the final answer is 5."
    benign_turn = "<think>" + prose + "</think><answer>5</answer>"
    fmt = TurnFormat(allow_python_block=True)
    cases = [
        ("extract_answer", k, v, extract_answer, benign_extract)
        for k, v in ADVERSARIAL_EXTRACT.items()
    ]
    cases += [
        ("parse_turn", k, v, lambda t: parse_turn(t, fmt), benign_turn)
        for k, v in ADVERSARIAL_TURNS.items()
    ]
    verifier = MathVerifier(timeout_s=0.05)
    for name, label, text, fn, benign in cases:
        seconds = _best_of(lambda fn=fn, text=text: fn(text))
        base = _best_of(lambda fn=fn, benign=benign: fn(benign))
        line = (
            f"  {name:<14} {label:<30} {len(text) / 1e6:.1f} MB {seconds * 1000:7.1f} ms "
            f"(x{seconds / base:.1f} a benign 1 MB input)"
        )
        if name == "extract_answer":
            verdict = verifier.verify(prediction=text, gold="12")
            line += f"; verify, 50 ms deadline: {verdict.elapsed * 1000:.0f} ms ({verdict.reason})"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, action="append")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    paths = args.corpus or DEFAULT_CORPORA
    rows = load(paths)
    print(f"corpus: {len(rows)} labelled pairs from {', '.join(p.name for p in paths)}")
    t_verdicts, t_seconds = run_tirgym(rows, args.repeat)
    ours = score("tirgym", rows, t_verdicts, t_seconds)
    theirs_run = run_math_verify(rows, max(1, args.repeat - 2))
    if theirs_run is not None:
        theirs = score("Math-Verify", rows, *theirs_run)
        print(
            f"ratio        throughput x{ours['rate'] / theirs['rate']:.1f}, "
            f"accuracy {ours['accuracy'] - theirs['accuracy']:+.1%} points"
        )
    if theirs_run is not None:
        calm = [r for r in rows if r["category"] != "huge"]
        _, t_calm = run_tirgym(calm, args.repeat)
        _, m_calm = run_math_verify(calm, 1)
        ours_rate, theirs_rate = len(calm) / t_calm, len(calm) / m_calm
        print(
            f"without the 'huge' category ({len(calm)} pairs, where Math-Verify hits its timeouts): "
            f"tirgym {ours_rate:.1f}/s, Math-Verify {theirs_rate:.1f}/s, ratio x{ours_rate / theirs_rate:.1f}"
        )
    with MathVerifier() as verifier:
        start = time.perf_counter()
        verifier.verify_many([(r["prediction"], r["gold"]) for r in rows * 4], workers=2)
        many = time.perf_counter() - start
    print(
        f"verify_many  2 processes: {len(rows) * 4 / many:8.1f} verifications/s (incl. pool start)"
    )
    print("pathological inputs:")
    pathological_from_thread()
    print("adversarial inputs (linear scans; bar: 1 MB < 0.5 s):")
    adversarial_inputs()


if __name__ == "__main__":
    main()
