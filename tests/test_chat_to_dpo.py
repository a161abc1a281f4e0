"""The whole loop on the tiny model: chat, correct the answers through `tanren chat`'s slash
commands, train DPO on the pairs collected, and the model prefers the corrections."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from engine.config import ModelConfig, RunConfig, apply_overrides
from engine.data import check_file, load_records
from engine.paths import Home
from engine.runs.rundir import create_run
from engine.train import worker
from tui.entry import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUESTIONS = 16


def correction(n: int) -> str:
    """Longer than the model's own answers, so the base finds it less likely than what it said."""
    return f"It is {2 * n}, twice {n}."


def accuracy(model: Path, pairs: list, adapter: Path | None):
    from engine.chat.transformers_backend import TransformersBackend
    from evals.preference import measure_preference

    adapters = {"run": adapter} if adapter else {}
    with TransformersBackend.load(model, ModelConfig(base=str(model)), adapters=adapters) as backend:
        return measure_preference(backend, pairs, adapter="run" if adapter else None, max_length=128)


def test_dpo_on_corrected_chat_answers_raises_their_preference_accuracy(home: Home, tiny_model_dir: Path,
                                                                         monkeypatch) -> None:
    # Each answer (the tiny model's random words) is corrected, then the chat starts afresh.
    script = "".join(f"What is {n} plus {n}?\n/edit {correction(n)}\n/reset\n" for n in range(QUESTIONS))
    monkeypatch.setattr("sys.stdin", io.StringIO(script + "/quit\n"))
    settings = ["--temperature", "1", "--max-new-tokens", "6", "--seed", "5", "--dataset", "sums"]
    assert main(["chat", str(tiny_model_dir), *settings]) == 0
    path = home.dataset_dir("sums") / "pairs.jsonl"
    assert not check_file(path).errors
    kind, pairs = load_records(path)
    assert kind.format == "preference" and len(pairs) == QUESTIONS
    assert [pair.chosen for pair in pairs] == [correction(n) for n in range(QUESTIONS)]

    config = apply_overrides(RunConfig(), [
        f"model.base={tiny_model_dir}", f"data.path={path}", "data.max_length=128", "data.split=1.0,0.0,0.0",
        "training.objective=dpo", "training.max_steps=24", "training.micro_batch_size=4",
        "training.gradient_accumulation=1", "training.learning_rate=5e-3", "training.warmup_ratio=0", "name=sums-dpo"])
    run = create_run(config, home)
    assert worker.main([str(run.path)]) == 0, run.status()

    before, after = accuracy(tiny_model_dir, pairs, None), accuracy(tiny_model_dir, pairs, run.adapter)
    assert before.pairs == after.pairs == QUESTIONS
    # measured: accuracy 0.19 -> 0.56, margin -18.3 -> +1.4 nats
    assert after.accuracy >= before.accuracy + 0.25 and after.margin > before.margin + 10
