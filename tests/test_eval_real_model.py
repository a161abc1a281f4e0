"""Evals on the real default model: a short LoRA run on the sample data lowers held-out
perplexity; llama.cpp renders and scores the shipped GGUF as transformers does its HF folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.chat.llama_cpp_backend import LlamaCppBackend
from engine.chat.transformers_backend import TransformersBackend
from engine.config import ModelConfig, RunConfig, apply_overrides
from engine.data import SAMPLE_CHAT, SAMPLE_HELDOUT, load_examples, render_example
from engine.models.registry import BUILTIN_MODELS, DEFAULT_MODEL
from engine.runs import create_run
from engine.train import worker
from evals.perplexity import measure_perplexity

pytestmark = [pytest.mark.real_model, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def hf(default_model_dir: Path):
    with TransformersBackend.load(default_model_dir, ModelConfig()) as backend:
        yield backend


def test_a_short_training_run_lowers_held_out_perplexity(default_model_dir: Path, home) -> None:
    config = apply_overrides(RunConfig(), [
        f"model.base={default_model_dir}", f"data.path={SAMPLE_CHAT}", "data.max_length=128",
        "adapter.method=lora", "training.max_steps=8", "training.micro_batch_size=2",
        "training.gradient_accumulation=1", "training.learning_rate=1e-3", "training.warmup_ratio=0",
        "training.save_steps=8", "training.packing=true", "training.gradient_checkpointing=false", "name=short",
    ])
    run = create_run(config, home)
    assert worker.main([str(run.path)]) == 0, run.status()

    held_out = load_examples(SAMPLE_HELDOUT)[:20]  # no prompt of it is in the training file
    with TransformersBackend.load(default_model_dir, ModelConfig(), adapters={"short": run.adapter}) as backend:
        base = measure_perplexity(backend, held_out)
        tuned = measure_perplexity(backend, held_out, adapter="short")
    assert tuned.tokens == base.tokens and base.examples == len(held_out)
    assert tuned.perplexity < 0.9 * base.perplexity, (base, tuned)


def test_shipped_gguf_renders_the_same_tokens_and_scores_close_to_its_hf_folder(hf) -> None:
    examples = load_examples(SAMPLE_HELDOUT)
    with LlamaCppBackend.load(BUILTIN_MODELS[DEFAULT_MODEL].gguf_path()) as gguf:
        for example in examples:
            expected = render_example(example, hf.tokenizer, max_length=10_000)
            got = render_example(example, gguf.tokenizer, max_length=10_000)
            assert got.input_ids == expected.input_ids and got.assistant_mask == expected.assistant_mask
        llama = measure_perplexity(gguf, examples[:8])
    transformers = measure_perplexity(hf, examples[:8])
    assert llama.tokens == transformers.tokens
    # the HF folder holds the Q4_1 file's weights dequantized; llama.cpp multiplies them with
    # activations rounded to 8 bits, which moves the NLL by a little
    assert llama.nll == pytest.approx(transformers.nll, rel=0.03)
