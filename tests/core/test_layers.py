"""The import rules of docs/ARCHITECTURE.md, checked on the source: module-level imports go
one way (core <- sandbox <- rewards <- envs <- agents <- trainer/eval <- CLI and services),
eval never imports the trainer, and no two modules import each other at load time.
Imports inside functions are the deliberate lazy ones (the CLI's verbs, optional
dependencies) and are not load-time edges."""

import ast
from pathlib import Path

ROOT = Path(__file__).parents[2]
FOLDERS = {
    "tirgym": "tirgym",
    "tirgym.sandbox": "sandbox",
    "tirgym.rewards": "rewards",
    "tirgym.envs": "envs",
    "tirgym.agents": "agents",
    "tirgym.trainer": "trainer",
}
CORE = {"episode", "protocol", "env_spec", "registry", "errors", "env_kwargs", "progress"}
RANK = {"core": 0, "sandbox": 1, "rewards": 2, "envs": 3, "agents": 4, "trainer": 5, "eval": 5}
TOP = 6  # the CLI, the env server, the viewer, integrations, the package __init__


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if package == "tirgym" and parts and parts[0] in {"sandbox", "rewards", "envs"}:
                continue  # not a folder of tirgym/
            out[name] = path
    return out


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) < 2:
        return TOP
    if parts[1] in CORE:
        return RANK["core"]
    return RANK.get(parts[1], TOP)


def _load_time_imports(path: Path, module: str, known: set[str]) -> set[str]:
    """Modules imported at module level (not under `if TYPE_CHECKING`), resolved to known ones."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in [node] if not isinstance(node, ast.Try) else node.body:
            if isinstance(sub, ast.Import):
                found |= {a.name for a in sub.names}
            elif isinstance(sub, ast.ImportFrom):
                base = sub.module or ""
                if sub.level:
                    up = package.split(".")[: len(package.split(".")) - sub.level + 1]
                    base = ".".join([*up, base] if base else up)
                found.add(base)
                found |= {f"{base}.{a.name}" for a in sub.names}
    return {m for m in found if m in known and m != module}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _load_time_imports(p, m, known) for m, p in mods.items()}


def test_load_time_imports_go_one_way():
    bad = []
    for mod, deps in _graph().items():
        if mod == "tirgym":  # the package __init__ registers the built-in envs
            continue
        for dep in deps:
            if dep == "tirgym":
                continue
            if _layer(dep) > _layer(mod) or (mod.startswith("tirgym.eval") and ".trainer" in dep):
                bad.append(f"{mod} -> {dep}")
    assert not bad, bad


def test_no_import_cycle_at_load_time():
    graph = {m: {d for d in deps if d != "tirgym"} for m, deps in _graph().items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in graph.get(m, ()):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d) :] + [d])
            elif d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


def test_the_checker_sees_imports():
    graph = _graph()
    assert "tirgym.episode" in graph["tirgym.trainer.loop"]
    assert "tirgym.agents.batching" in graph["tirgym.agents.hf_backend"]
