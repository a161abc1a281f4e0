"""The Ollama Modelfile: the chat format recognized exactly, a TEMPLATE that says the same, every stop.

The chat templates are real ones: llama.cpp's collection (installed with the converters), and
published ones it lacks, written out here."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.chat.template import render_chat
from engine.config import GenerationConfig
from engine.data.render import PLAIN_TEMPLATE
from engine.errors import ExportError, TanrenError
from engine.messages import Message
from export.chat_formats import FORMATS, UnknownChatFormat, detect_chat_format
from export.converters import TEMPLATES as TEMPLATE_FOLDER
from export.converters import installed_converters
from export.modelfile import build_modelfile, check_ollama_name, ollama_command, ollama_create
from tests.chat_templates import GEMMA3_TEMPLATE, LLAMA2_TEMPLATE, PHI4_TEMPLATE
from tests.tiny_model import CHAT_TEMPLATE

HARNESS = Path(__file__).resolve().parent / "ollama_template" / "main.go"
CHATML = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}
QWEN = {"eos_token": "<|im_end|>"}
LLAMA3 = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
GEMMA = {"bos_token": "<bos>", "eos_token": "<eos>"}
SENTENCEPIECE = {"bos_token": "<s>", "eos_token": "</s>"}  # Llama 2, Mistral
PHI3 = {"bos_token": "<s>", "eos_token": "<|endoftext|>"}
PHI4 = {"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>"}
DEEPSEEK = {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"}
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
# Published templates that llama.cpp's collection lacks, as their tokenizer_config.json has them:
WRITTEN = {"chatml": CHAT_TEMPLATE, "smollm2": SMOLLM2_TEMPLATE, "llama3": LLAMA3_TEMPLATE,
           "Llama-2-7b-chat": LLAMA2_TEMPLATE, "gemma-3-it": GEMMA3_TEMPLATE, "phi-4": PHI4_TEMPLATE}
TEMPLATES = {  # name (written out above, or a real template's file in llama.cpp's collection):
    # (special tokens, format, how the default system prompt begins: "" for none)
    "chatml": (CHATML, "ChatML", ""),
    "smollm2": (CHATML, "ChatML", "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
    "Qwen-Qwen2.5-7B-Instruct": (QWEN, "ChatML", "You are Qwen, created by Alibaba Cloud."),
    "Qwen-Qwen3-0.6B": (QWEN, "ChatML", ""),
    "LFM2.5-Instruct": ({"bos_token": "<|startoftext|>", "eos_token": "<|im_end|>"}, "ChatML", ""),  # BOS first
    "Qwen-QwQ-32B": (QWEN, "ChatML", ""),
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": (DEEPSEEK, "DeepSeek R1", ""),
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B": (DEEPSEEK, "DeepSeek R1", ""),
    "llama3": (LLAMA3, "Llama 3", ""),
    "meta-llama-Llama-3.1-8B-Instruct": (LLAMA3, "Llama 3.1", ""),
    "meta-llama-Llama-3.3-70B-Instruct": (LLAMA3, "Llama 3.1", ""),
    "google-gemma-2-2b-it": (GEMMA, "Gemma", ""),
    "gemma-3-it": (GEMMA, "Gemma", ""),
    "mistralai-Mistral-Nemo-Instruct-2407": (SENTENCEPIECE, "Mistral [INST]", ""),
    "unsloth-mistral-Devstral-Small-2507": (SENTENCEPIECE, "Mistral [SYSTEM_PROMPT]", "You are Devstral, a helpful"),
    "microsoft-Phi-3.5-mini-instruct": (PHI3, "Phi-3", ""),
    "phi-4": (PHI4, "Phi-4", ""),
    "Llama-2-7b-chat": (SENTENCEPIECE, "Llama 2", ""),
}
CONVERSATIONS = [
    [Message("user", "What is the capital of France?")],
    [Message("system", "あなたは簡潔に答えます。"), Message("user", "日本の首都は？")],
    [Message("user", "Hi"), Message("assistant", "Hello! How can I help?"), Message("user", "Tell me a joke.\nA short one.")],
    [Message("system", "Be brief."), Message("user", "1+1?"), Message("assistant", "2"), Message("user", "2+2?")],
    [Message("system", "Be brief.\nAnswer in English."), Message("user", "1+1?"), Message("assistant", "2"),
     Message("user", "2+2?"), Message("assistant", "4"), Message("user", "東京は？")],
]


def chat_template(name: str) -> str:
    if name in WRITTEN:
        return WRITTEN[name]
    return (installed_converters().folder / TEMPLATE_FOLDER / f"{name}.jinja").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", TEMPLATES)
def test_known_chat_formats_are_recognized_with_their_default_system_prompt(name) -> None:
    special, expected_format, default_system = TEMPLATES[name]
    detected = detect_chat_format(chat_template(name), special, model=name)
    assert detected.format.name == expected_format
    assert detected.default_system.startswith(default_system)
    assert bool(detected.default_system) == bool(default_system)


@pytest.fixture(scope="module")
def ollama_render(tmp_path_factory):
    """Ollama's way of rendering a TEMPLATE (tests/ollama_template/main.go), built once."""
    if shutil.which("go") is None:
        pytest.skip("needs Go to run Ollama's template engine (text/template)")
    binary = tmp_path_factory.mktemp("go") / "ollama-template"
    built = subprocess.run(["go", "build", "-o", str(binary), str(HARNESS)], capture_output=True, text=True,
                           check=False, timeout=300)
    assert built.returncode == 0, built.stderr

    def render(go_template: str, system: str, messages: list[Message]) -> str:
        payload = {"template": go_template, "system": system, "messages": [m.as_dict() for m in messages]}
        result = subprocess.run([str(binary)], input=json.dumps(payload), capture_output=True, text=True,
                                check=False, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    return render


def _hf_render(template: str, messages: list[Message], special: dict[str, str], name: str) -> str:
    """What the model's own template renders; for a template that refuses system turns (Gemma 2), the
    conversation with its system prompt at the head of the first user turn, as Gemma 3's template puts it."""
    try:
        return render_chat(template, messages, special_tokens=special, model=name)
    except TanrenError:
        if messages[0].role != "system":
            raise
        system, user, *rest = messages
        joined = [Message("user", f"{system.content}\n\n{user.content}"), *rest]
        return render_chat(template, joined, special_tokens=special, model=name)


def _check_ollama_renders_as_the_template(ollama_render, template: str, special: dict[str, str], name: str) -> None:
    """Go's text/template, fed as Ollama feeds it, gives the HF template's text for every conversation
    (less the BOS that the runtime adds itself when the tokenizer asks for it)."""
    detected = detect_chat_format(template, special, model=name)
    begins_with_bos = detected.format.render((), "\x00").startswith("\x00")
    for messages in CONVERSATIONS:
        expected = _hf_render(template, messages, special, name)
        if begins_with_bos:
            expected = expected.removeprefix(special["bos_token"])
        assert ollama_render(detected.format.go_template, detected.default_system, messages) == expected, name


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_ollama_template_renders_what_the_chat_template_renders(name, ollama_render) -> None:
    _check_ollama_renders_as_the_template(ollama_render, chat_template(name), TEMPLATES[name][0], name)


def test_every_real_template_is_said_exactly_or_refused(ollama_render) -> None:
    """Across llama.cpp's whole collection, a template is either refused or said by Ollama exactly: none is guessed."""
    accepted = []
    for path in sorted((installed_converters().folder / TEMPLATE_FOLDER).glob("*.jinja")):
        template = path.read_text(encoding="utf-8")
        try:
            detect_chat_format(template, SENTENCEPIECE, model=path.stem)
        except UnknownChatFormat:
            continue
        _check_ollama_renders_as_the_template(ollama_render, template, SENTENCEPIECE, path.stem)
        accepted.append(path.stem)
    assert {"Qwen-Qwen3-0.6B", "google-gemma-2-2b-it", "microsoft-Phi-3.5-mini-instruct"} <= set(accepted)


def test_reasoning_models_keep_their_think_output_and_open_the_answer_as_their_template_does() -> None:
    """The DeepSeek-R1 distills write `<think>` after the answer's header (llama.cpp's copy of QwQ also
    closes it, as thinking is not asked for); Qwen3 writes nothing there. Nothing stops at `<think>` or
    `</think>`: the reasoning reaches the user intact."""
    openings = {"Qwen-Qwen3-0.6B": "<|im_start|>assistant\n",
                "Qwen-QwQ-32B": "<|im_start|>assistant\n<think>\n</think>",
                "deepseek-ai-DeepSeek-R1-Distill-Llama-8B": "<｜Assistant｜><think>\n"}
    for name, opening in openings.items():
        special = TEMPLATES[name][0]
        chat_format = detect_chat_format(chat_template(name), special, model=name).format
        assert chat_format.render([Message("user", "Hi")], "").endswith(opening)
        assert not any("think>" in stop for stop in chat_format.stops)


def test_every_format_stops_at_its_end_of_turn_and_turn_starts() -> None:
    stops = {f.name: f.stops for f in FORMATS}
    assert stops["Gemma"] == ("<end_of_turn>", "<start_of_turn>")
    assert stops["Mistral [INST]"] == ("</s>", "[INST]")
    assert stops["Mistral [SYSTEM_PROMPT]"] == ("</s>", "[INST]", "[SYSTEM_PROMPT]")
    assert stops["Phi-3"] == ("<|end|>", "<|system|>", "<|user|>", "<|assistant|>")
    assert stops["Llama 2"] == ("</s>", "[INST]", "<<SYS>>")
    assert all(f.stops[0] == f.end_of_turn for f in FORMATS)


@pytest.mark.parametrize(("name", "why"), [
    ("ibm-granite-granite-3.3-2B-Instruct", "known: ChatML"),  # a family of its own
    ("HuggingFaceTB-SmolLM3-3B", "known: ChatML"),  # ChatML turns, but a system turn wrapped in metadata
    ("meta-llama-Llama-3.2-3B-Instruct", "writes today's date"),  # Llama 3.1 with today's date
])
def test_templates_outside_the_known_families_are_refused_with_the_llama_cpp_way(name, why) -> None:
    template = chat_template(name)
    with pytest.raises(UnknownChatFormat) as refused:
        detect_chat_format(template, SENTENCEPIECE, model=name)
    message = refused.value.message
    assert why in message and "\n" not in message
    assert f"begins: {template.strip().splitlines()[0]}" in message
    assert "llama-server --jinja -m FILE" in message


def test_a_default_system_prompt_with_todays_date_is_refused() -> None:
    """Mistral Small 3.2's turns are known, but its default system prompt holds the day's date,
    which a Modelfile's fixed SYSTEM would freeze."""
    name = "Mistral-Small-3.2-24B-Instruct-2506"
    with pytest.raises(UnknownChatFormat, match="today's date into its default system prompt.*llama-server --jinja"):
        detect_chat_format(chat_template(name), SENTENCEPIECE, model=name)


def test_unknown_or_missing_chat_templates_are_refused_by_name() -> None:
    with pytest.raises(UnknownChatFormat, match="not one tanren can translate for Ollama .* begins: {% for message"):
        detect_chat_format(PLAIN_TEMPLATE, {"eos_token": "</s>"}, model="plain")
    gemma_like = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}"
                  "<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}")
    with pytest.raises(UnknownChatFormat, match="not one tanren can translate"):
        detect_chat_format(gemma_like, {}, model="gemma-like")
    chatml_with_more = CHAT_TEMPLATE.replace("assistant\n' }}", "assistant\nSure! ' }}")
    with pytest.raises(UnknownChatFormat, match="not one tanren can translate"):
        detect_chat_format(chatml_with_more, CHATML, model="chatml-sure")
    with pytest.raises(UnknownChatFormat, match="has no chat template.*llama-server --jinja"):
        detect_chat_format(None, {}, model="base-model")
    assert issubclass(UnknownChatFormat, ExportError)


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


def test_a_gemma_modelfile_stops_at_its_turn_markers_then_eos(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "chat_template.jinja").write_text(GEMMA3_TEMPLATE)
    modelfile = build_modelfile(folder, "m.gguf", GenerationConfig(), title="gemma")
    assert modelfile.chat_format.name == "Gemma" and "(Gemma chat format)" in modelfile.text
    assert modelfile.stops[:2] == ("<end_of_turn>", "<start_of_turn>") and len(modelfile.stops) > 2


def test_a_chat_format_ollama_cannot_say_reaches_the_caller_as_unknown(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The export catches it and goes on without a Modelfile."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "chat_template.jinja").write_text(PLAIN_TEMPLATE)
    with pytest.raises(UnknownChatFormat, match="llama-server --jinja"):
        build_modelfile(folder, "m.gguf", GenerationConfig(), title="plain")


@pytest.mark.real_model
def test_default_model_gets_chatml_with_its_system_prompt(default_model_dir: Path) -> None:
    modelfile = build_modelfile(default_model_dir, "smol-q8_0.gguf", GenerationConfig(), title="smol")
    assert modelfile.chat_format.name == "ChatML" and modelfile.stops == ("<|im_end|>", "<|im_start|>")
    assert modelfile.system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
