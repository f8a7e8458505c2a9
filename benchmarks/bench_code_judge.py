"""What judging a CodeTask submission costs: the judge (a fresh sandbox session, the tests in
one process, the submission in a forked one) against running the same submission and tests
in one stateless sandbox process, the unisolated way, measured in the same run.

    .venv/bin/python benchmarks/bench_code_judge.py [--backend jail] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from tirgym.envs.code.harness import run_hidden_tests
from tirgym.envs.code.tasks import DIFFICULTIES, generate_code_task
from tirgym.sandbox import get_sandbox


def inline_program(problem) -> str:
    """Submission and tests in one process: the cost floor of any sandboxed judge."""
    lines = [problem.reference, problem.setup]
    for test in problem.tests:
        lines.append(
            f"assert ({test.src}) == {test.expected!r}" if test.kind == "expr" else test.src
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    problems = [generate_code_task(seed, d) for d in DIFFICULTIES for seed in range(4)]
    judge, inline = [], []
    with get_sandbox(backend=args.backend, workers=1, warm=True) as sandbox:
        for _ in range(args.rounds):
            for p in problems:  # interleaved, so load changes hit both alike
                start = time.perf_counter()
                report = run_hidden_tests(
                    sandbox, p.reference, p.tests, p.setup, entry_point=p.entry_point
                )
                judge.append(time.perf_counter() - start)
                assert report.passed == report.total, report
                start = time.perf_counter()
                result = sandbox.run(inline_program(p), timeout_s=10)
                inline.append(time.perf_counter() - start)
                assert result.ok, result
        name = sandbox.name
    j, i = statistics.median(judge), statistics.median(inline)
    print(f"backend {name}, {len(problems)} problems x {args.rounds} rounds, 10 hidden tests each")
    print(f"judge (session, two processes)   median {j * 1000:6.1f} ms")
    print(f"inline (one stateless process)   median {i * 1000:6.1f} ms")
    print(f"ratio judge / inline             x{j / i:.1f}")


if __name__ == "__main__":
    main()
