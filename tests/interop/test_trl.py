"""The TRL adapter against TRL's real GRPOTrainer (2 steps on CPU, the tiny model)."""

import pytest

import tirgym
from tirgym.integrations.trl import environment_factory, seed_dataset, tirgym_reward

trl = pytest.importorskip("trl")
pytestmark = pytest.mark.interop

GUESS = "tirgym/GuessNumber-v0"


def _replay(env_id, kwargs, seed, actions) -> float:
    env = tirgym.make(env_id, **kwargs)
    env.reset(seed=seed)
    total = 0.0
    for a in actions:
        total += env.step(a)[1]
    return total


def test_tools_drive_the_env_and_the_reward_is_tirgyms():
    Env = environment_factory(GUESS, max_turns=8)
    env = Env()
    prompt = env.reset(seed=3)
    assert "answer" in prompt and "between 1 and 100" in prompt
    lo, hi = 1, 100
    while True:
        guess = (lo + hi) // 2
        reply = env.answer(str(guess))
        if "Correct" in reply or "Turn limit" in reply:
            break
        lo, hi = (guess + 1, hi) if "higher" in reply else (lo, guess - 1)
    assert env.answer("1").startswith("The episode is over")
    (reward,) = tirgym_reward(
        completions=[[{"role": "assistant", "content": "done"}]], environments=[env]
    )
    assert reward == 1.0
    (rec,) = Env.rollouts
    assert _replay(GUESS, {"max_turns": 8}, 3, rec["actions"]) == reward


def test_a_final_plain_text_turn_is_the_last_action():
    """A rollout that ends without a tool call hands its last message to the env as a turn."""
    Env = environment_factory(GUESS, format_penalty=0.25)
    envs = [Env(), Env(), Env()]
    for e in envs:
        e.reset(seed=5)
    secret = envs[0]._env.unwrapped.secret
    completions = [
        [{"role": "assistant", "content": f"<answer>{secret}</answer>"}],
        [{"role": "assistant", "content": "no idea"}],
        [{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "answer"}}]}],
    ]
    assert tirgym_reward(completions=completions, environments=envs) == [1.0, -0.25, 0.0]
    assert [r["actions"] for r in Env.rollouts] == [[f"<answer>{secret}</answer>"], ["no idea"], []]


def test_env_tools_become_typed_methods():
    from transformers.utils import get_json_schema

    Env = environment_factory("tirgym/MathTIR-v0")
    schema = get_json_schema(Env().python)["function"]
    assert schema["name"] == "python" and schema["parameters"]["required"] == ["code"]
    env = Env()
    env.reset(seed=0)
    out = env.python(code="print(6*7)")
    assert "42" in out


def test_grpo_trainer_runs_two_steps_and_logs_tirgyms_rewards(tiny_path, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer
    from trl.chat_template_utils import qwen3_template

    tok = AutoTokenizer.from_pretrained(tiny_path)
    tok.response_template = qwen3_template  # the tiny model's template writes Qwen's tool calls
    model = AutoModelForCausalLM.from_pretrained(tiny_path)
    kwargs = {"max_turns": 4, "format_penalty": 0.1}
    Env = environment_factory(GUESS, **kwargs)
    args = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=24,
        max_tool_calling_iterations=2,
        learning_rate=1e-4,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model,
        processing_class=tok,
        environment_factory=Env,
        reward_funcs=tirgym_reward,
        train_dataset=seed_dataset(GUESS, 8),
        args=args,
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert len(logs) == 2
    assert len(Env.rollouts) == 2 * 2  # steps x (1 prompt x 2 generations)
    for k in (0, 2):  # the two generations of a prompt play the same task
        assert Env.rollouts[k]["seed"] == Env.rollouts[k + 1]["seed"]
    assert all(rec["actions"] for rec in Env.rollouts)  # the env saw the model's turns
    for rec in Env.rollouts:  # every rollout's reward is what tirgym gives its actions
        assert rec["reward"] == _replay(GUESS, kwargs, rec["seed"], rec["actions"])
    for k, h in enumerate(logs):  # and TRL logged their mean under the env's name
        step = Env.rollouts[2 * k : 2 * (k + 1)]
        mean = sum(r["reward"] for r in step) / len(step)
        assert h["rewards/tirgym_reward/mean"] == pytest.approx(mean)
        assert h["reward"] == pytest.approx(mean)
