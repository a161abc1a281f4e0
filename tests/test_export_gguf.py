"""GGUF export through llama.cpp's own converter: llama.cpp must read our files exactly as
transformers reads the HF folder, and every way the conversion can go wrong is one clear error."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ExportError
from export.converters import FOLDER_ENV, VERSION_FILE, causal_lm_architectures, installed_converters
from export.gguf import GGUF_DTYPES, write_gguf
from export.output import check_free_space
from tests.full_disk import EXPORT_ERROR_EXIT, run_on_a_full_disk
from tests.llama_cpp_runner import llama_is_end_of_generation, llama_logits, llama_tokenize
from tests.tiny_model import CORPUS, build_sentencepiece_tokenizer, build_tiny_model

PROMPT = [{"role": "user", "content": "日本の首都は？ What is the capital of France?"}]
TEXTS = [
    "The capital of France is Paris. I'm sure they've   gone.",
    "日本の首都は東京です。こんにちは、元気ですか？２０２４年に1234人が来ました。",
    "<|im_start|>user\nIn 2024, 12345 people paid $3.50 each.<|im_end|>\n<|im_start|>assistant\n",
    "  multiple   spaces\n\n\ttabs\r\n and 'QUOTES' DON'T 3.14159 ...!!",
]
TOKENIZER_CORPUS = CORPUS + [
    "In 2024, 12345 people paid $3.50; 2023 and 1999 were 100 years apart.\n\n",
    "I'm sure they've gone; we'll see. DON'T SHOUT.\r\n  Tabs\tand  spaces  ",
    "２０２４年に東京で1234人が働いています。\n",
]


def _hf_logits(folder: Path, ids: list[int]):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def _chat_ids(folder: Path) -> list[int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    return tokenizer.encode(text + TEXTS[0] + TEXTS[1], add_special_tokens=False)


def _read_fields(path: Path) -> dict:
    from gguf import GGUFReader

    reader = GGUFReader(path)
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("tokenizer.ggml.")
              or name.endswith(("_id", ".pre", ".model", "_token"))}
    fields["tensors"] = {tensor.name: tensor.tensor_type.name for tensor in reader.tensors}
    return fields


@pytest.fixture(scope="module")
def tiny_ggufs(gguf_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("gguf")
    return {dtype: write_gguf(gguf_model_dir, out / f"tiny-{dtype}.gguf", dtype=dtype) for dtype in GGUF_DTYPES}


def _assert_close(got, expected, relative: float) -> None:
    """llama.cpp keeps its KV cache in F16, so even F32 weights agree only to about 1e-3."""
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= relative * np.abs(expected).max()


@pytest.mark.parametrize(("dtype", "relative"), [("f32", 2e-3), ("f16", 5e-3), ("bf16", 5e-2)])
def test_llama_cpp_logits_match_transformers(tiny_ggufs, gguf_model_dir: Path, dtype: str, relative: float) -> None:
    ids = _chat_ids(gguf_model_dir)
    expected = _hf_logits(gguf_model_dir, ids)
    got = llama_logits(tiny_ggufs[dtype], ids)
    _assert_close(got, expected, relative)
    if dtype != "bf16":  # greedy decoding picks the same next token everywhere
        assert (got.argmax(-1) == expected.argmax(-1)).all()


def test_metadata_carries_tokenizer_specials_and_template(tiny_ggufs, gguf_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_model_dir)
    fields = _read_fields(tiny_ggufs["f16"])
    assert fields["general.architecture"] == "llama"
    assert fields["tokenizer.ggml.model"] == "gpt2"
    assert fields["tokenizer.ggml.pre"] == "smollm"  # found by the converter from the token ids' hash
    assert fields["tokenizer.chat_template"] == tokenizer.chat_template
    assert fields["tokenizer.ggml.bos_token_id"] == tokenizer.bos_token_id
    assert fields["tokenizer.ggml.eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    # tied embeddings: llama.cpp reuses token_embd as the output head, so no output tensor
    assert "output.weight" not in fields["tensors"]
    assert fields["tensors"]["token_embd.weight"] == "F16"
    assert fields["tensors"]["blk.0.attn_norm.weight"] == "F32"
    assert llama_is_end_of_generation(tiny_ggufs["f16"], tokenizer.convert_tokens_to_ids("<|im_end|>"))


def test_chat_turn_end_stops_generation_even_when_eos_is_another_token(gguf_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_model_dir)
    tokenizer.eos_token = "<|endoftext|>"
    folder = build_tiny_model(tmp_path / "eos-endoftext", tokenizer=tokenizer)
    gguf = write_gguf(folder, tmp_path / "m.gguf")
    im_end = AutoTokenizer.from_pretrained(folder).convert_tokens_to_ids("<|im_end|>")
    assert llama_is_end_of_generation(gguf, im_end)


def test_llama_cpp_tokenizes_like_transformers(tiny_ggufs, gguf_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(gguf_model_dir)
    for text in TEXTS:
        assert llama_tokenize(tiny_ggufs["f16"], text) == hf.encode(text), text


def test_a_retrained_bpe_tokenizer_is_refused_not_guessed(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The converter names pre-tokenizers by a hash of known tokenizers' ids; a tokenizer trained
    anew has none, and a wrong name would make llama.cpp split text unlike training."""
    with pytest.raises(ExportError) as caught:
        write_gguf(tiny_model_dir, tmp_path / "out" / "m.gguf")
    assert "does not know this tokenizer's pre-tokenizer" in caught.value.message
    assert "convert_hf_to_gguf_update.py" in caught.value.hint
    assert list((tmp_path / "out").iterdir()) == []


def test_a_sentencepiece_tokenizer_without_its_model_file_is_refused(tmp_path: Path) -> None:
    """Llama 2 / Mistral v0.x style in HF form only: without tokenizer.model the converter scores
    every piece alike, and llama.cpp would merge the pieces unlike the model's training."""
    folder = build_tiny_model(tmp_path / "spm", tokenizer=build_sentencepiece_tokenizer(TOKENIZER_CORPUS))
    with pytest.raises(ExportError) as caught:
        write_gguf(folder, tmp_path / "spm.gguf", dtype="f32")
    assert "no tokenizer.model" in caught.value.message
    assert not (tmp_path / "spm.gguf").exists()


@pytest.mark.parametrize("config", [
    {"tie_word_embeddings": False},
    {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 16}},
    {"rope_scaling": {"rope_type": "linear", "factor": 4.0}},
], ids=["untied-head", "llama3-rope", "linear-rope"])
def test_llama_variants_run_in_llama_cpp(config: dict, gguf_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    # larger random weights than the default make attention depend strongly on position
    tokenizer = AutoTokenizer.from_pretrained(gguf_model_dir)
    folder = build_tiny_model(tmp_path / "model", tokenizer=tokenizer, seed=3, initializer_range=0.2, **config)
    gguf = write_gguf(folder, tmp_path / "m.gguf", dtype="f32")
    ids = _chat_ids(folder)
    expected = _hf_logits(folder, ids)
    _assert_close(llama_logits(gguf, ids), expected, 5e-3)
    if "rope_scaling" in config:  # the scaling matters here: ignoring it would fail the check above
        plain = build_tiny_model(tmp_path / "plain", tokenizer=tokenizer, seed=3, initializer_range=0.2)
        assert np.abs(_hf_logits(plain, ids) - expected).max() > 0.1 * np.abs(expected).max()


def test_architectures_are_the_converters_causal_language_models() -> None:
    names = causal_lm_architectures(installed_converters().architectures())
    wanted = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "Gemma3ForCausalLM",
              "Gemma3ForConditionalGeneration", "Phi3ForCausalLM", "GPT2LMHeadModel"}
    assert wanted <= set(names)
    # embedding, encoder and speech models are converted too, but tanren does not train them
    assert not {"BertModel", "XLMRobertaModel", "T5EncoderModel", "Qwen2AudioForConditionalGeneration"} & set(names)


def _copy(folder: Path, dest: Path) -> Path:
    return Path(shutil.copytree(folder, dest))


def test_an_architecture_llama_cpp_cannot_run_is_named(gguf_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(gguf_model_dir, tmp_path / "future")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["Tanren9ForCausalLM"]}))
    with pytest.raises(ExportError) as caught:
        write_gguf(folder, tmp_path / "out.gguf")
    assert caught.value.message.startswith("llama.cpp cannot run Tanren9ForCausalLM yet")
    assert "tanren export --architectures" in caught.value.hint
    assert not (tmp_path / "out.gguf").exists()


@pytest.mark.parametrize("fault", ["missing", "other-version"])
def test_missing_or_mismatched_converters_name_the_set_up(fault: str, gguf_model_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "converters"
    if fault == "other-version":
        shutil.copytree(installed_converters().folder, folder)
        (folder / VERSION_FILE).write_text("0.0.1\n")
    monkeypatch.setenv(FOLDER_ENV, str(folder))
    with pytest.raises(ExportError) as caught:
        write_gguf(gguf_model_dir, tmp_path / "m.gguf")
    assert caught.value.hint.endswith("make setup")
    assert ("0.0.1" in caught.value.message) == (fault == "other-version")
    assert not (tmp_path / "m.gguf").exists()


@pytest.mark.parametrize("damage", ["no-config", "no-tokenizer", "no-weights", "missing-shard", "truncated-weights",
                                    "quantized-weights", "wordpiece"])
def test_broken_model_folders_fail_clearly_and_write_nothing(damage: str, gguf_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    folder = _copy(gguf_model_dir, tmp_path / "model")
    weights = folder / "model.safetensors"
    if damage == "no-config":
        (folder / "config.json").unlink()
    elif damage == "no-tokenizer":
        (folder / "tokenizer.json").unlink()
    elif damage == "no-weights":
        weights.unlink()
    elif damage == "missing-shard":
        names = list(load_file(weights))
        weights.rename(folder / "model-00001-of-00002.safetensors")
        index = {"weight_map": {name: f"model-0000{1 + i % 2}-of-00002.safetensors" for i, name in enumerate(names)}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    elif damage == "truncated-weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "quantized-weights":
        tensors = load_file(weights)
        tensors["model.layers.0.mlp.up_proj.weight"] = torch.zeros((128, 64), dtype=torch.uint8)
        save_file(tensors, weights)
    elif damage == "wordpiece":  # a tokenizer the converter cannot read
        tokenizer_json = json.loads((folder / "tokenizer.json").read_text())
        tokenizer_json["model"]["type"] = "WordPiece"
        (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json))
    with pytest.raises(ExportError) as caught:
        write_gguf(folder, tmp_path / "out" / "model.gguf")
    rendered = caught.value.render()
    assert rendered.startswith("error: ") and len(rendered.splitlines()) <= 3
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_unknown_dtype_is_refused(gguf_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="q4"):
        write_gguf(gguf_model_dir, tmp_path / "m.gguf", dtype="q4")


def test_output_under_a_file_is_refused(gguf_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("x")
    with pytest.raises(ExportError, match="not-a-folder is a file"):
        write_gguf(gguf_model_dir, tmp_path / "not-a-folder" / "deeper" / "m.gguf")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_read_only_output_folder_is_refused(gguf_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    with pytest.raises(ExportError, match="not writable"):
        write_gguf(gguf_model_dir, folder / "m.gguf")


def test_too_little_free_space_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="not enough free disk space"):
        check_free_space(tmp_path, 1 << 60, what="model.gguf")


def test_disk_filling_up_mid_write_leaves_no_file(gguf_model_dir: Path, tmp_path: Path) -> None:
    """A file-size limit makes the kernel refuse writes past 64 KiB, as a full disk would."""
    out_folder = tmp_path / "out"
    out_folder.mkdir()
    result = run_on_a_full_disk("from export.gguf import write_gguf",
                                f"write_gguf({str(gguf_model_dir)!r}, {str(out_folder / 'm.gguf')!r}, dtype='f32')")
    assert result.returncode == EXPORT_ERROR_EXIT, result.stderr[-2000:]
    assert "disk filled up" in result.stdout
    assert list(out_folder.iterdir()) == []


def test_the_readme_lists_the_architectures_the_command_prints() -> None:
    from engine.i18n import load_catalog
    from export.cli import architectures_listing

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- architectures: tanren export --architectures -->\n```text\n", 1)[1]
    assert block.split("\n```\n<!-- /architectures -->", 1)[0] == architectures_listing(load_catalog("en").gettext)
