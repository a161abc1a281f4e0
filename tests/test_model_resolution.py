from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.config import ModelConfig
from engine.errors import ModelNotFoundError, UnsafeModelError
from engine.models.loading import check_weights_safe, load_model, load_tokenizer, model_folder
from engine.models.registry import BUILTIN_MODELS, DEFAULT_MODEL
from engine.models.resolve import resolve_model
from engine.paths import Home


def _use_hub_cache(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    import huggingface_hub.constants

    # huggingface_hub reads HF_HUB_CACHE once, at import time
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(path))


def test_default_model_resolves_from_package_metadata(home: Home) -> None:
    resolved = resolve_model(DEFAULT_MODEL, home)
    assert resolved.kind == "builtin"
    assert resolved.gguf_source == BUILTIN_MODELS[DEFAULT_MODEL].gguf_path()
    assert resolved.gguf_source.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert resolved.folder == home.models / DEFAULT_MODEL


def test_local_folder_loads(home: Home, tiny_model_dir: Path) -> None:
    config = ModelConfig(base=str(tiny_model_dir))
    folder = model_folder(config, home)
    assert folder == tiny_model_dir.resolve()
    model = load_model(folder, config)
    tokenizer = load_tokenizer(folder, config)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "日本の首都は？"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt.endswith("<|im_start|>assistant\n")
    ids = tokenizer(prompt, return_tensors="pt")
    assert tokenizer.decode(ids["input_ids"][0]) == prompt  # Japanese survives the byte-level BPE
    assert model(**ids).logits.shape[-1] == len(tokenizer)


def test_folder_without_config_is_explained(home: Home, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path), home)


def test_missing_paths_and_unknown_names(home: Home, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "nope.gguf"), home)
    with pytest.raises(ModelNotFoundError, match="unknown model"):
        resolve_model("not a model", home)


def test_uncached_hub_id_is_one_line_with_the_fix(home: Home, tmp_path: Path, monkeypatch) -> None:
    _use_hub_cache(monkeypatch, tmp_path / "empty-cache")
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("someone/some-model", home)
    assert "not in the local Hugging Face cache" in info.value.message
    assert info.value.hint == "download it first with: hf download someone/some-model"
    assert "\n" not in info.value.message


def test_cached_hub_id_resolves_offline(home: Home, tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--tiny" / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_model_dir, snapshot)
    (cache / "models--someone--tiny" / "refs").mkdir()
    (cache / "models--someone--tiny" / "refs" / "main").write_text("a" * 40)
    _use_hub_cache(monkeypatch, cache)
    resolved = resolve_model("someone/tiny", home)
    assert resolved.kind == "hub" and resolved.folder == snapshot


def test_pickle_weights_are_refused_unless_allowed(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(UnsafeModelError) as info:
        check_weights_safe(tmp_path, allow_pickle=False)
    assert "--allow-pickle" in (info.value.hint or "")
    check_weights_safe(tmp_path, allow_pickle=True)


def test_remote_code_is_off_by_default() -> None:
    assert ModelConfig().trust_remote_code is False
    assert ModelConfig().allow_pickle is False


def test_gguf_file_resolves_to_a_cache_folder(home: Home, tmp_path: Path) -> None:
    gguf = tmp_path / "my model.gguf"
    gguf.write_bytes(b"GGUF")
    resolved = resolve_model(str(gguf), home)
    assert resolved.kind == "gguf" and resolved.needs_materializing
    assert resolved.folder.parent == home.models and resolved.folder.name.startswith("my-model-")


def test_a_conversion_is_told_as_phrases_that_the_log_keeps(home: Home, tmp_path: Path, monkeypatch) -> None:
    """The training, export and server logs record what model_folder says: in the user's language
    when shown, however the process that converted the model was started."""
    from engine.events import EventLog, Log
    from engine.i18n import load_catalog
    from engine.models import materialize

    def convert(_gguf: Path, out: Path, *, name: str) -> None:  # the conversion itself is tested with the real model
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"")

    monkeypatch.setattr(materialize, "_convert", convert)
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    log = EventLog(tmp_path / "events.jsonl")
    model_folder(ModelConfig(base=str(gguf)), home, on_status=lambda said: log.append(Log.said(said)))
    events = log.read()
    assert [event.phrase.msgid for event in events] == \
        ["converting {file} into {folder} (once; about a minute)", "ready: {folder}"]
    assert events[0].message.startswith("converting tiny.gguf into ")  # the English stays for scripts
    assert events[1].shown(load_catalog("ja").gettext).startswith("準備完了: ")
