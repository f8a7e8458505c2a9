"""final_model is the trained policy on its own: a LoRA run after an SFT warm start saves
the adapters merged into the SFT weights, as a plain transformers dir."""

import torch
from train_helpers import guess_config

from tirgym.trainer.loop import Trainer


def test_lora_after_sft_final_model_is_the_trained_policy(tiny_path, tmp_path):
    from transformers import AutoModelForCausalLM

    cfg = guess_config(
        tiny_path,
        tmp_path / "run",
        seed=0,
        steps=1,
        sft={"demos": {"policy": "solver", "episodes": 4}, "epochs": 1, "batch_size": 2, "lr": 1e-2},
        lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        optim={"lr": 1e-2},
        eval={"before": False, "after": False},
        log={"progress": False},
    )
    tr = Trainer(cfg, quiet=True)
    try:
        run = tr.run()
        saved = run / "final_model"
        assert not (saved / "adapter_config.json").exists()
        loaded = AutoModelForCausalLM.from_pretrained(saved).eval()
        base = AutoModelForCausalLM.from_pretrained(tiny_path).eval()
        x = torch.tensor([[1, 5, 9, 13, 17, 21]])
        with torch.no_grad():
            want = tr.model(input_ids=x).logits
            got = loaded(input_ids=x).logits
            untrained = base(input_ids=x).logits
        assert torch.allclose(got, want, atol=1e-4)
        assert not torch.allclose(untrained, want, atol=1e-3)  # SFT and RL moved it
    finally:
        tr.close()
