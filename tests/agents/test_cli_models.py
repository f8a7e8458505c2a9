import hashlib
import json

from transformers import AutoModelForCausalLM, AutoTokenizer

from tirgym.agents import Task, rollout
from tirgym.agents.models import PROTOCOL_TOKENS, SPECIAL_TOKENS, build_tiny_model
from tirgym.agents.scripted import SolverPolicy
from tirgym.agents.show import CLOSE, OPEN, render_episode
from tirgym.cli import main
from tirgym.episode import load_jsonl


def _digest(path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def test_tiny_model_is_deterministic_and_loads_offline(tiny_path, tmp_path):
    again = build_tiny_model(tmp_path / "again", seed=0)
    assert _digest(again) == _digest(tiny_path)
    other = build_tiny_model(tmp_path / "other", seed=1)
    assert _digest(other)["model.safetensors"] != _digest(tiny_path)["model.safetensors"]
    tok = AutoTokenizer.from_pretrained(tiny_path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_path, local_files_only=True)
    assert model.config.model_type == "qwen2" and model.config.head_dim == 64
    for t in SPECIAL_TOKENS + PROTOCOL_TOKENS:
        assert len(tok.encode(t, add_special_tokens=False)) == 1, t
    tools = [{"type": "function", "function": {"name": "python", "parameters": {}}}]
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tools=tools, tokenize=False)
    assert "<tools>" in text and '"name": "python"' in text


def test_show_marks_sampled_tokens_without_a_tty(hf_policy):
    ep = rollout(SolverPolicy(hf_policy.tokenizer), [Task("tirgym/GuessNumber-v0", 1)])[0]
    text = render_episode(ep, hf_policy.tokenizer, color=False)
    assert f"{OPEN}<think>Binary search.</think><answer>50</answer>{CLOSE}" in text
    assert "↳ turn 1: reward" in text
    assert f"{OPEN}<|im_start|>" not in text  # the prompt is not marked as sampled


def test_cli_rollout_show_and_demos(tiny_path, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    main(
        [
            "rollout",
            "--env",
            "tirgym/GuessNumber-v0",
            "--policy",
            "solver",
            "--n",
            "3",
            "--out",
            str(out),
            "--tokenizer",
            str(tiny_path),
        ]
    )
    eps = load_jsonl(out)
    assert len(eps) == 3 and all(e.success and e.token_ids for e in eps)
    assert "success 3/3" in capsys.readouterr().out
    main(["show", str(out), "-i", "0", "--no-color", "--tokenizer", str(tiny_path)])
    assert OPEN in capsys.readouterr().out
    import tirgym
    from tirgym.agents.demos import make_demos

    tirgym.register_suite("agents-test", ["tirgym/GuessNumber-v0"], override=True)
    stats = make_demos("agents-test", tmp_path / "d.jsonl", n=2, tokenizer=str(tiny_path))
    assert {k: (st.kept, st.total) for k, st in stats.items()} == {"tirgym/GuessNumber-v0": (2, 2)}
    demos = load_jsonl(tmp_path / "d.jsonl")
    assert all(d.num_sampled_tokens > 0 and not d.trainable for d in demos)
    json.dumps(demos[0].to_dict())
