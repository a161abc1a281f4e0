"""Preference tuning on the tiny model: DPO, KTO and ORPO learn the shipped pairs, their adapters
load in plain peft, a run continuing an SFT adapter compares with it, full fine-tuning
precomputes its reference, a killed DPO run resumes, and mismatched data is refused."""

from __future__ import annotations

import functools
import json
import os
import signal
from pathlib import Path

import pytest

from engine.config import RunConfig, apply_overrides, load_record, save_yaml
from engine.data import PreferencePair, load_records
from engine.data.bundled import SAMPLE_PREFERENCE
from engine.events import Log, Metrics
from engine.model_card import read_card_front_matter
from engine.runs.rundir import RunDir, create_run, open_run
from engine.train import worker
from engine.train.checkpoints import complete_checkpoints
from tests.cli import tanren, wait_for
from tests.data_files import write_chat_data
from tests.tiny_model import make_adapter

_wait_for = functools.partial(wait_for, timeout=900.0, interval=0.05)
MAX_LENGTH = 128


@pytest.fixture(scope="module")
def pairs(tiny_model_dir: Path) -> list[PreferencePair]:
    """The shipped pairs whose answers are about as long, so that the accuracy measures preference
    rather than length (a longer answer has a lower log-probability), and that fit the window."""
    import sys

    from transformers import AutoTokenizer

    from engine.data import render_examples

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    shipped = list(load_records(SAMPLE_PREFERENCE)[1])
    lengths = [len(r.input_ids) for r in render_examples([c for p in shipped for c in p.conversations()], tokenizer,
                                                          max_length=sys.maxsize)]
    return [pair for pair, chosen, rejected in zip(shipped, lengths[::2], lengths[1::2])
            if max(chosen, rejected) <= MAX_LENGTH and abs(chosen - rejected) <= 3]


def _config(base: Path, data: Path | str, objective: str, *overrides: str) -> RunConfig:
    return apply_overrides(RunConfig(), [
        f"model.base={base}", f"data.path={data}", f"data.max_length={MAX_LENGTH}", "data.split=1.0,0.0,0.0",
        "training.micro_batch_size=4", "training.gradient_accumulation=1", "training.learning_rate=5e-3",
        "training.warmup_ratio=0", f"training.objective={objective}", *overrides,
    ])


@pytest.fixture(scope="module")
def pairs_file(pairs: list[PreferencePair], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for pair in pairs:
            out.write(json.dumps(pair.to_trl(), ensure_ascii=False) + "\n")
    return path


def _ratings(path: Path, pairs: list[PreferencePair]) -> Path:
    """KTO's form of the pairs: each chosen answer rated good, each rejected one bad."""
    with path.open("w", encoding="utf-8") as out:
        for pair in pairs:
            for answer, label in ((pair.chosen, True), (pair.rejected, False)):
                prompt = [{"role": m.role, "content": m.content} for m in pair.prompt]
                out.write(json.dumps({"prompt": prompt, "completion": answer, "label": label}, ensure_ascii=False) + "\n")
    return path


def _data(objective: str, tmp_path: Path, pairs_file: Path) -> Path:
    return _ratings(tmp_path / "ratings.jsonl", load_records(pairs_file)[1]) if objective == "kto" else pairs_file


def _metrics(run: RunDir, name: str) -> list[float]:
    return [e.values[name] for e in run.events.read() if isinstance(e, Metrics) and name in e.values]


def _logs(run: RunDir) -> list[str]:
    return [e.message for e in run.events.read() if isinstance(e, Log)]


def _accuracy(tiny_model_dir: Path, pairs: list[PreferencePair], adapter: Path | None):
    from engine.chat.transformers_backend import TransformersBackend
    from engine.config import ModelConfig
    from evals.preference import measure_preference

    adapters = {"run": adapter} if adapter else {}
    with TransformersBackend.load(tiny_model_dir, ModelConfig(base=str(tiny_model_dir)), adapters=adapters) as backend:
        return measure_preference(backend, pairs, adapter="run" if adapter else None, max_length=MAX_LENGTH)


@pytest.fixture(scope="module")
def base_accuracy(tiny_model_dir: Path, pairs: list[PreferencePair]):
    return _accuracy(tiny_model_dir, pairs, None)


@pytest.mark.parametrize(("objective", "settings", "trainer"), [
    ("dpo", ("training.learning_rate=5e-3",), "trl.DPOTrainer"),
    ("kto", ("training.learning_rate=2e-2", "training.beta=0.5"), "trl.KTOTrainer"),
    ("orpo", ("training.learning_rate=2e-2",), "trl.experimental.orpo.ORPOTrainer (experimental)"),
])
def test_each_objective_lowers_its_loss_and_raises_preference_accuracy(
        objective, settings, trainer, home, tiny_model_dir, tmp_path, pairs, pairs_file, base_accuracy) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    config = _config(tiny_model_dir, _data(objective, tmp_path, pairs_file), objective, "training.epochs=2",
                     *settings, f"name={objective}")
    run = create_run(config, home)
    assert worker.main([str(run.path)]) == 0, run.status()
    epochs = [(e.values["epoch"], e.values["loss"]) for e in run.events.read() if isinstance(e, Metrics)]
    first, second = ([loss for epoch, loss in epochs if (epoch <= 1) == (part == 1)] for part in (1, 2))
    assert first and second and sum(second) / len(second) < sum(first) / len(first)  # each epoch sees every example
    assert _metrics(run, "reward_chosen") and _metrics(run, "reward_margin")  # the live view's preference metrics

    tuned = _accuracy(tiny_model_dir, pairs, run.adapter)
    assert tuned.pairs == base_accuracy.pairs == len(pairs) > 20
    assert tuned.accuracy > base_accuracy.accuracy and tuned.margin > base_accuracy.margin
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run.adapter)  # plain peft

    assert load_record(run.config_file).trainer == trainer
    card = read_card_front_matter(run.adapter / "README.md")
    assert card["trainer"] == trainer and objective in card["tags"]
    assert card["hyperparameters"]["objective"] == objective


def test_dpo_from_an_sft_adapter_compares_with_that_adapter(home, tiny_model_dir, tmp_path, pairs, pairs_file) -> None:
    from safetensors import safe_open

    sft = make_adapter(tiny_model_dir, tmp_path / "sft", seed=3)
    run = create_run(_config(tiny_model_dir, pairs_file, "dpo", "training.max_steps=3",
                             f"adapter.init_adapter={sft}", "name=aligned"), home)
    assert worker.main([str(run.path)]) == 0, run.status()
    assert any(line.startswith(f"reference: the starting adapter {sft}") for line in _logs(run))
    # before its first update the policy is the SFT adapter, so against that reference its rewards
    # beta * (log p_policy - log p_ref) are zero; against the raw base they would not be
    first = next(e.values for e in run.events.read() if isinstance(e, Metrics))
    assert first["reward_chosen"] == pytest.approx(0, abs=1e-4) and first["reward_rejected"] == pytest.approx(0, abs=1e-4)
    base, adapter = _accuracy(tiny_model_dir, pairs, None), _accuracy(tiny_model_dir, pairs, sft)
    # the SFT adapter really moves the answers' log-probabilities (the margin is their difference), by
    # far more than the rewards' tolerance above: with the raw base as reference they would show it
    assert abs(adapter.margin - base.margin) > 0.1
    # the result is the trained adapter alone, not trl's frozen copy beside it
    assert not (run.adapter / "ref").exists()
    with safe_open(run.adapter / "adapter_model.safetensors", "pt") as weights:
        assert weights.keys() and not any(".ref." in key for key in weights.keys())


@pytest.mark.parametrize(("objective", "method"), [
    ("dpo", "full"), ("kto", "full"), ("orpo", "full"), ("dpo", "qlora"), ("kto", "qlora"), ("orpo", "qlora"),
])
def test_every_objective_trains_with_every_method(objective, method, home, tiny_model_dir, tmp_path, pairs_file) -> None:
    run = create_run(_config(tiny_model_dir, _data(objective, tmp_path, pairs_file), objective, f"adapter.method={method}",
                             "training.max_steps=2", "training.learning_rate=1e-4", f"name={objective}-{method}"), home)
    assert worker.main([str(run.path)]) == 0, run.status()
    assert run.status().state == "done" and len(_metrics(run, "loss")) == 2
    assert (run.path / ("model" if method == "full" else "adapter")).is_dir()
    references = [line for line in _logs(run) if line.startswith("reference: ")]
    if objective == "orpo":
        assert references == []  # ORPO compares the chosen and rejected answers' odds, with no reference
    elif method == "full":
        assert references == [references[0]] and "computed once before the first step" in references[0]
    else:
        assert references == ["reference: the base model with the adapter switched off (one copy of the base)"]


def test_a_killed_dpo_run_resumes_like_an_sft_run(home, tiny_model_dir, pairs_file) -> None:
    settings = ("training.max_steps=30", "training.save_steps=5", "training.learning_rate=1e-3")
    config_file = home.root / "configs" / "dpo.yaml"
    save_yaml(_config(tiny_model_dir, pairs_file, "dpo", *settings), config_file)
    assert tanren("train", "--config", str(config_file), "--name", "crashy", home=home).returncode == 0
    run = open_run("crashy", home)
    _wait_for(lambda: any(p.name == "checkpoint-5" for p in complete_checkpoints(run.checkpoints)),
              what="a first checkpoint")
    os.kill(run.pid(), signal.SIGKILL)
    _wait_for(lambda: not run.is_alive(), what="the process to die")
    steps = [e.step for e in run.events.read() if isinstance(e, Metrics) and "loss" in e.values]
    killed_at = steps[-1]
    assert killed_at < 30, "the run finished before it could be killed"

    result = tanren("resume", "crashy", "--follow", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = [e.step for e in run.events.read() if isinstance(e, Metrics) and "loss" in e.values]
    after_kill = steps[steps.index(killed_at) + 1:]
    assert 5 < after_kill[0] <= killed_at + 1 and after_kill == list(range(after_kill[0], 31))
    assert run.status().state == "done" and run.adapter.is_dir()


def test_an_objective_that_does_not_fit_the_data_is_refused_before_the_start(home, tiny_model_dir, tmp_path) -> None:
    chat = write_chat_data(tmp_path / "chat.jsonl", examples=8)
    result = tanren("train", "--base", str(tiny_model_dir), "--data", str(chat), "--objective", "dpo", home=home)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "DPO needs preference pairs" in result.stderr and str(chat) in result.stderr
    assert not home.runs.exists() or not list(home.runs.iterdir())  # nothing was created

    result = tanren("train", "--base", str(tiny_model_dir), "--data", str(SAMPLE_PREFERENCE), "--objective", "kto",
                    home=home)
    assert result.returncode != 0 and "KTO needs KTO ratings" in result.stderr and "DPO or ORPO" in result.stderr
