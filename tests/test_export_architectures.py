"""The models people tune, end to end: train a LoRA with `tanren train`, export with `tanren export`,
and hold llama.cpp against transformers, for each architecture family.

Each family is a tiny random model (tests/arch_models.py); Gemma 3 and Phi-3 carry SentencePiece
tokenizers trained locally, so the converter's SentencePiece path runs, not its BPE one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data import SAMPLE_CHAT
from engine.paths import Home
from engine.runs.rundir import open_run
from export.jobs import list_exports
from export.manifest import read_manifest
from tests.arch_models import FAMILIES, build_arch_model
from tests.cli import tanren
from tests.llama_cpp_runner import llama_logits, open_llama

TEXTS = ("The capital of France is Paris. I'm sure they've gone, haven't they?",
         "日本の首都は東京です。こんにちは、元気ですか？富士山は3776メートルです。")
CHAT = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "日本の首都は？ Capital of France?"},
        {"role": "assistant", "content": "東京です。Paris."}]
TRAIN = ("--data", str(SAMPLE_CHAT), "--max-steps", "2", "--max-length", "128", "--batch-size", "2",
         "--grad-accum", "1", "--lr", "5e-3", "--follow")


def _hf_logits(folder: Path, ids: list[int], adapter: Path | None = None):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    with torch.no_grad():
        return model.eval()(torch.tensor([ids])).logits[0].numpy()


def _chat_ids(tokenizer) -> list[int]:
    text = tokenizer.apply_chat_template(CHAT, tokenize=False)
    return tokenizer.encode(text, add_special_tokens=False)


def _close(got, expected, relative: float) -> float:
    """The largest difference as a share of the largest logit; llama.cpp keeps its KV cache in F16."""
    assert got.shape == expected.shape
    share = float(np.abs(got - expected).max() / np.abs(expected).max())
    assert share <= relative
    return share


@pytest.fixture(scope="module")
def export_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return Home(tmp_path_factory.mktemp("arch-home") / "home")


@pytest.mark.parametrize("family", FAMILIES)
def test_train_export_and_llama_cpp_agree(family: str, export_home: Home, default_model_dir: Path,
                                          tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from export.gguf import write_gguf
    from export.lora_gguf import write_lora_gguf

    base = build_arch_model(tmp_path / family, family, tokenizer_source=default_model_dir)
    trained = tanren("train", "--base", str(base), "--name", family, *TRAIN, home=export_home, timeout=900)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    exported = tanren("export", family, "--quant", "q8_0", "--follow", home=export_home, timeout=900)
    assert exported.returncode == 0, exported.stdout[-3000:] + exported.stderr[-3000:]
    (export,) = list_exports(family, export_home)
    manifest = read_manifest(export.out)
    assert manifest["status"] == "passed" and [m["name"] for m in manifest["verification"]["models"]] == \
        ["merged", "f16", "q8_0"]

    merged, f16 = export.out / "merged", export.out / f"{family}-f16.gguf"
    tokenizer = AutoTokenizer.from_pretrained(merged)
    with open_llama(f16, vocab_only=True) as llm:
        for text in TEXTS:
            assert llm.tokenize(text.encode(), add_bos=False, special=True) == \
                tokenizer.encode(text, add_special_tokens=False), text
    ids = _chat_ids(tokenizer)
    _close(llama_logits(f16, ids), _hf_logits(merged, ids), 1e-2)

    # The adapter alone, on the base's own GGUF, as `llama.cpp --lora` or Ollama's ADAPTER runs it
    adapter = open_run(family, export_home).adapter
    base_gguf = write_gguf(base, tmp_path / "base-f32.gguf", dtype="f32")
    lora_gguf = write_lora_gguf(adapter, base, tmp_path / "adapter.gguf", dtype="f32")
    expected = _hf_logits(base, ids, adapter)
    _close(llama_logits(base_gguf, ids, lora_path=str(lora_gguf)), expected, 5e-3)
    assert np.abs(_hf_logits(base, ids) - expected).max() > 1e-2 * np.abs(expected).max()  # the adapter matters


def test_a_full_fine_tune_of_qwen3_exports_and_verifies(export_home: Home, default_model_dir: Path,
                                                         tmp_path: Path) -> None:
    base = build_arch_model(tmp_path / "qwen3", "qwen3", tokenizer_source=default_model_dir)
    trained = tanren("train", "--base", str(base), "--name", "qwen3-full", "--method", "full", *TRAIN,
                     home=export_home, timeout=900)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    exported = tanren("export", "qwen3-full", "--quant", "q8_0", "--follow", home=export_home, timeout=900)
    assert exported.returncode == 0, exported.stdout[-3000:] + exported.stderr[-3000:]
    (export,) = list_exports("qwen3-full", export_home)
    manifest = read_manifest(export.out)
    assert manifest["status"] == "passed" and manifest["merge"] is None  # the run's model/ is exported as it is
    assert manifest["inputs"]["base"]["folder"] == str(open_run("qwen3-full", export_home).model)


def test_a_gemma_chat_model_gets_a_gemma_modelfile_that_stops_at_the_end_of_its_turn(export_home: Home,
                                                                                      tmp_path: Path) -> None:
    from export.chat_formats import FORMATS
    from tests.export_runs import run_with_adapter

    base = build_arch_model(tmp_path / "gemma-chat", "gemma3", gemma_chat=True)
    run_with_adapter(export_home, base, "gemma-chat")
    exported = tanren("export", "gemma-chat", "--quant", "q8_0", "--follow", home=export_home, timeout=900)
    assert exported.returncode == 0, exported.stdout[-3000:] + exported.stderr[-3000:]
    (export,) = list_exports("gemma-chat", export_home)
    manifest = read_manifest(export.out)
    assert manifest["status"] == "passed"  # <end_of_turn> ends generation in every file, as Ollama stops
    assert manifest["modelfile"]["chat_format"] == "Gemma" and "<end_of_turn>" in manifest["modelfile"]["stops"]
    modelfile = (export.out / "Modelfile").read_text()
    gemma = next(f for f in FORMATS if f.name == "Gemma")
    assert f'TEMPLATE """{gemma.go_template}"""' in modelfile and 'PARAMETER stop "<end_of_turn>"' in modelfile
