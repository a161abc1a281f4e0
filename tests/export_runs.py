"""Runs with saved LoRA adapters on the tiny model, for export tests (no training needed)."""

from __future__ import annotations

from pathlib import Path

from engine.config import RunConfig, apply_overrides
from engine.data import SAMPLE_CHAT
from engine.paths import Home
from engine.runs.rundir import RunDir, create_run


def save_lora(base: Path, out: Path, *, seed: int = 0, rank: int = 4, alpha: int = 8,
              targets: tuple[str, ...] = ("q_proj", "v_proj"), **settings) -> Path:
    """A PEFT LoRA adapter for `base` with random A and B (an untrained adapter changes nothing)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), init_lora_weights=False, **settings)
    with torch.random.fork_rng():  # peft draws the weights from the global generator; the caller's stream is left alone
        torch.manual_seed(seed)
        get_peft_model(model, config).save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def run_with_adapter(home: Home, base: Path, name: str = "tiny", *overrides: str) -> RunDir:
    """A finished run on `base` whose adapter/ folder holds a saved adapter."""
    config = apply_overrides(RunConfig(), [f"model.base={base}", f"data.path={SAMPLE_CHAT}", f"name={name}",
                                           *overrides])
    run = create_run(config, home)
    save_lora(base, run.adapter)
    run.set_status("done", "adapter saved by the test")
    return run
