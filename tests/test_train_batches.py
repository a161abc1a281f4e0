"""What a training step sees: padding-free rows that keep examples apart, and only examples with a loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.config import ModelConfig, RunConfig, apply_overrides
from engine.events import EventLog, Log
from engine.models.loading import load_tokenizer
from engine.train.dataset import build_datasets
from tests.data_files import QA, chat, write_jsonl
from tests.spies import record_calls

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_padding_free_row_keeps_its_examples_apart(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    first, second = torch.tensor([[5, 17, 42, 99, 7]]), torch.tensor([[3, 8, 21, 60, 11, 2, 9]])
    row = torch.cat([first, second], dim=1)
    positions = torch.cat([torch.arange(5), torch.arange(7)])[None]
    with torch.no_grad():
        # as in training: without a KV cache, transformers reads the examples' bounds from position_ids
        packed = model(input_ids=row, position_ids=positions, use_cache=False).logits[0]
        alone = torch.cat([model(input_ids=first).logits[0], model(input_ids=second).logits[0]])
    assert torch.allclose(packed, alone, atol=1e-5)  # the second example never attends to the first


def test_examples_with_nothing_left_to_learn_are_left_out(tmp_path: Path, tiny_model_dir: Path) -> None:
    long_question = "とても長い質問です。" * 60
    data = write_jsonl(tmp_path / "d.jsonl", [chat(*QA[0]), chat(long_question, "短い答え"), chat(*QA[1])])
    config = apply_overrides(RunConfig(), [f"data.path={data}", "data.split=1,0,0", "data.max_length=48"])
    events = EventLog(tmp_path / "events.jsonl")
    datasets = build_datasets(config, load_tokenizer(tiny_model_dir, ModelConfig()), events)
    assert len(datasets.train) == 2
    assert all(any(mask) for mask in datasets.train["assistant_masks"])
    logs = [e.message for e in events.read() if isinstance(e, Log)]
    assert any("; 1 left out, their answers cut away at max_length" in m for m in logs)


def test_a_cpu_training_step_fuses_the_lora_ops_attends_per_example_and_scores_only_labelled_tokens(
    tmp_path: Path, tiny_model_dir: Path, home, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.train.kernels import lm_head, lora_dropout
    from engine.train.recipe import run_training

    scored = record_calls(monkeypatch, lm_head, "label_log_probs", lambda hidden, *_: len(hidden))
    dropouts = record_calls(monkeypatch, lora_dropout._DropoutProjection, "apply", lambda *args: args[-1])
    summed = record_calls(monkeypatch, torch, "addmm", lambda *_: True)
    attended = record_calls(monkeypatch, torch.nn.functional, "scaled_dot_product_attention", lambda q, *_: q.shape[2])
    data = write_jsonl(tmp_path / "d.jsonl", [chat(*pair) for pair in QA])
    config = apply_overrides(RunConfig(), [
        f"model.base={tiny_model_dir}", f"data.path={data}", "data.split=1,0,0", "training.max_steps=1",
        f"training.micro_batch_size={len(QA)}", "adapter.dropout=0.1",
    ])
    outcome = run_training(config, tmp_path / "run", home, resume=False, should_stop=lambda: False,
                           events=EventLog(tmp_path / "events.jsonl"))
    assert outcome.global_step == 1 and dropouts and set(dropouts) == {0.1}
    assert len(summed) == len(dropouts)  # every adapted layer's call added its update inside the product
    trained = build_datasets(config, load_tokenizer(tiny_model_dir, ModelConfig()), EventLog(tmp_path / "e2.jsonl"))
    assert sum(scored) == sum(map(sum, trained.train["assistant_masks"]))  # the answers' tokens, nothing else
    assert set(attended) == set(map(len, trained.train["input_ids"]))  # each example attended alone, never the row


def test_one_process_recomputes_checkpointed_layers_the_reentrant_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.train import recipe

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    args = recipe.trainer_arguments(RunConfig(), tmp_path, has_eval=False)
    assert args.activation_checkpointing and args.activation_checkpointing_kwargs == {"use_reentrant": True}
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it in every process
    assert recipe.checkpointing_kwargs(RunConfig().training) == {"use_reentrant": False}
    off = apply_overrides(RunConfig(), ["training.gradient_checkpointing=false"])
    assert recipe.checkpointing_kwargs(off.training) is None
