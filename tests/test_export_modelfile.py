"""The Ollama Modelfile: the chat format recognized exactly, a TEMPLATE that says the same, every stop."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.chat.template import render_chat
from engine.config import GenerationConfig
from engine.data.render import PLAIN_TEMPLATE
from engine.errors import ExportError
from engine.messages import Message
from export.chat_formats import detect_chat_format
from export.modelfile import build_modelfile, check_ollama_name, ollama_command, ollama_create
from tests.tiny_model import CHAT_TEMPLATE

HARNESS = Path(__file__).resolve().parent / "ollama_template" / "main.go"
CHATML = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}
LLAMA3 = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
# SmolLM2's template (Qwen2's has the same shape, with its own default system prompt)
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Meta-Llama-3-8B-Instruct's template
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
TEMPLATES = {  # name: (template, special tokens, format, default system prompt)
    "chatml": (CHAT_TEMPLATE, CHATML, "ChatML", ""),
    "smollm2": (SMOLLM2_TEMPLATE, CHATML, "ChatML", "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
    "llama3": (LLAMA3_TEMPLATE, LLAMA3, "Llama 3", ""),
}
CONVERSATIONS = [
    [Message("user", "What is the capital of France?")],
    [Message("system", "あなたは簡潔に答えます。"), Message("user", "日本の首都は？")],
    [Message("user", "Hi"), Message("assistant", "Hello! How can I help?"), Message("user", "Tell me a joke.\nA short one.")],
    [Message("system", "Be brief."), Message("user", "1+1?"), Message("assistant", "2"), Message("user", "2+2?")],
]


@pytest.mark.parametrize("name", TEMPLATES)
def test_known_chat_formats_are_recognized_with_their_default_system_prompt(name) -> None:
    template, special, expected_format, default_system = TEMPLATES[name]
    detected = detect_chat_format(template, special, model=name)
    assert detected.format.name == expected_format
    assert detected.default_system == default_system


def _ollama_render(go_template: str, system: str, messages: list[Message]) -> str:
    payload = {"template": go_template, "system": system, "messages": [m.as_dict() for m in messages]}
    result = subprocess.run(["go", "run", str(HARNESS)], input=json.dumps(payload), capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(shutil.which("go") is None, reason="needs Go to run Ollama's template engine (text/template)")
@pytest.mark.parametrize("name", TEMPLATES)
def test_the_ollama_template_renders_what_the_chat_template_renders(name) -> None:
    """Go's text/template, fed as Ollama feeds it, gives the HF template's text for every conversation
    (less the BOS that llama.cpp adds itself when the tokenizer asks for it)."""
    template, special, _format, _system = TEMPLATES[name]
    detected = detect_chat_format(template, special, model=name)
    for messages in CONVERSATIONS:
        expected = render_chat(template, messages, special_tokens=special, model=name)
        if detected.format.name == "Llama 3":
            expected = expected.removeprefix(special["bos_token"])
        assert _ollama_render(detected.format.go_template, detected.default_system, messages) == expected


def test_unknown_or_missing_chat_templates_are_refused_by_name() -> None:
    with pytest.raises(ExportError, match="not one tanren can translate for Ollama .* begins: {% for message"):
        detect_chat_format(PLAIN_TEMPLATE, {"eos_token": "</s>"}, model="plain")
    gemma_like = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}"
                  "<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}")
    with pytest.raises(ExportError, match="not one tanren can translate"):
        detect_chat_format(gemma_like, {}, model="gemma-like")
    with pytest.raises(ExportError, match="has no chat template"):
        detect_chat_format(None, {}, model="base-model")


def test_modelfile_carries_template_stops_system_and_parameters(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config["eos_token_id"] = [config["eos_token_id"], 0]  # a second EOS: <|endoftext|>
    (folder / "generation_config.json").write_text(json.dumps(config))
    params = GenerationConfig(temperature=0.3, top_p=0.8, top_k=20, repetition_penalty=1.2, max_new_tokens=128,
                              seed=7, system_prompt="日本語で答えてください。")
    modelfile = build_modelfile(folder, "tiny-q8_0.gguf", params, title="tiny")
    text = modelfile.text
    assert "\nFROM ./tiny-q8_0.gguf\n" in text
    template = detect_chat_format(CHAT_TEMPLATE, CHATML, model="tiny").format.go_template
    assert f'TEMPLATE """{template}"""' in text
    assert 'SYSTEM """日本語で答えてください。"""' in text
    stops = [line.removeprefix("PARAMETER stop ") for line in text.splitlines() if line.startswith("PARAMETER stop ")]
    assert [json.loads(s) for s in stops] == ["<|im_end|>", "<|im_start|>", "<|endoftext|>"]
    for line in ("PARAMETER temperature 0.3", "PARAMETER top_p 0.8", "PARAMETER top_k 20", "PARAMETER repeat_penalty 1.2",
                 "PARAMETER num_predict 128", "PARAMETER seed 7"):
        assert line in text.splitlines()


def test_the_template_default_system_prompt_becomes_system(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "chat_template.jinja").write_text(SMOLLM2_TEMPLATE)
    modelfile = build_modelfile(folder, "m.gguf", GenerationConfig(), title="smol")
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""' in modelfile.text
    assert "PARAMETER seed" not in modelfile.text


def test_ollama_names_are_checked_and_the_command_is_given_without_ollama(tmp_path, monkeypatch) -> None:
    assert check_ollama_name("taro/my-model:q4_k_m") == "taro/my-model:q4_k_m"
    for bad in ("My Model", "../x", "a:b:c", ""):
        with pytest.raises(ExportError, match="not a valid Ollama model name"):
            check_ollama_name(bad)
    monkeypatch.setenv("PATH", str(tmp_path))  # no ollama here
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text("FROM ./m.gguf\n")
    assert ollama_create("my-model", modelfile) is False
    assert ollama_command("my-model", modelfile) == f"ollama create my-model -f {modelfile}"


def test_ollama_create_runs_with_the_modelfile_and_reports_failure(tmp_path, monkeypatch) -> None:
    """Ollama itself is not installed here: a stand-in `ollama` on PATH records how it is called,
    and fails on request, which checks tanren's command line and error, not Ollama."""
    calls = tmp_path / "calls.txt"
    stand_in = tmp_path / "bin" / "ollama"
    stand_in.parent.mkdir()
    stand_in.write_text(f'#!/bin/sh\necho "$PWD $*" >> {calls}\n'
                        '[ "$2" = "broken" ] && { echo "Error: could not connect to ollama app" >&2; exit 1; }\nexit 0\n')
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", f"{stand_in.parent}:/usr/bin:/bin")
    folder = tmp_path / "export"
    folder.mkdir()
    modelfile = folder / "Modelfile"
    modelfile.write_text("FROM ./m.gguf\n")
    assert ollama_create("my-model:q8", modelfile) is True
    assert calls.read_text().splitlines() == [f"{folder} create my-model:q8 -f {modelfile}"]
    with pytest.raises(ExportError, match="ollama create broken failed: Error: could not connect") as error:
        ollama_create("broken", modelfile)
    assert f"ollama create broken -f {modelfile}" in error.value.hint


@pytest.mark.real_model
def test_default_model_gets_chatml_with_its_system_prompt(default_model_dir: Path) -> None:
    modelfile = build_modelfile(default_model_dir, "smol-q8_0.gguf", GenerationConfig(), title="smol")
    assert modelfile.chat_format.name == "ChatML" and modelfile.stops == ("<|im_end|>", "<|im_start|>")
    assert modelfile.system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
