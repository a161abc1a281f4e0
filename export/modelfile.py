"""An Ollama Modelfile for an exported GGUF, and `ollama create` when Ollama is installed.

The Modelfile carries what makes a model behave in Ollama as it did in training and chat: the
prompt format (TEMPLATE, translated from the model's chat template), a stop for every
end-of-turn and EOS token (without them a model rambles on past its answer), the template's
default system prompt, and the run's default sampling parameters.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from engine.child import failure_summary
from engine.config import GenerationConfig
from engine.errors import ExportError
from engine.phrases import phrase
from export.chat_formats import ChatFormat, DetectedFormat, detect_chat_format

MODELFILE = "Modelfile"
_OLLAMA_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)?(:[A-Za-z0-9][A-Za-z0-9._-]{0,127})?$")


@dataclass(frozen=True)
class Modelfile:
    text: str
    chat_format: ChatFormat
    stops: tuple[str, ...]
    system: str


def check_ollama_name(name: str) -> str:
    if not _OLLAMA_NAME.fullmatch(name):
        raise ExportError(phrase("{name!r} is not a valid Ollama model name", name=name), where="--ollama",
                          hint=phrase("use lowercase letters, digits, '.', '_' or '-', optionally NAMESPACE/ and :TAG, "
                                      "e.g. my-model:q4"))
    return name


def build_modelfile(hf_folder: Path, gguf_name: str, params: GenerationConfig, *, title: str) -> Modelfile:
    """The Modelfile for the GGUF file `gguf_name` (beside it) converted from `hf_folder`; UnknownChatFormat
    when the model's chat template is none an Ollama TEMPLATE can say exactly (the GGUF still runs with
    llama.cpp, which reads the template from the file)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_folder, local_files_only=True)
    detected = detect_chat_format(tokenizer.chat_template, dict(tokenizer.special_tokens_map), model=title)
    stops = _stop_strings(detected, tokenizer, hf_folder)
    system = params.system_prompt or detected.default_system
    lines = [f"# Ollama Modelfile for {title}, written by tanren ({detected.format.name} chat format)",
             f"FROM ./{gguf_name}", "", f'TEMPLATE """{detected.format.go_template}"""']
    if system:
        if '"""' in system:
            raise ExportError(phrase('the system prompt holds """, which a Modelfile cannot quote'),
                              where="generation.system_prompt")
        lines.append(f'SYSTEM """{system}"""')
    lines.append("")
    lines += [f"PARAMETER stop {json.dumps(stop, ensure_ascii=False)}" for stop in stops]
    lines += [f"PARAMETER {name} {value}" for name, value in _parameters(params)]
    return Modelfile("\n".join(lines) + "\n", detected.format, stops, system)


def _stop_strings(detected: DetectedFormat, tokenizer, hf_folder: Path) -> tuple[str, ...]:
    """The format's turn markers, then every EOS token (tokenizer's and generation config's)."""
    eos_ids = _generation_eos_ids(hf_folder)
    eos = [tokenizer.eos_token, *tokenizer.convert_ids_to_tokens(eos_ids)]
    return tuple(dict.fromkeys(s for s in (*detected.format.stops, *eos) if s))


def _generation_eos_ids(hf_folder: Path) -> list[int]:
    path = hf_folder / "generation_config.json"
    try:
        eos = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id")
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ExportError(phrase("{file} cannot be read: {error}", file=path.name, error=exc), where=str(path)) from None
    return [i for i in (eos if isinstance(eos, list) else [eos]) if isinstance(i, int)]


def _parameters(params: GenerationConfig) -> list[tuple[str, object]]:
    """tanren's generation settings under Ollama's names."""
    values = [("temperature", params.temperature), ("top_p", params.top_p), ("top_k", params.top_k),
              ("repeat_penalty", params.repetition_penalty), ("num_predict", params.max_new_tokens)]
    if params.seed is not None:
        values.append(("seed", params.seed))
    return values


def ollama_command(name: str, modelfile: Path) -> str:
    return shlex.join(["ollama", "create", name, "-f", str(modelfile)])


def ollama_create(name: str, modelfile: Path) -> bool:
    """Run `ollama create` if Ollama is installed; False (nothing done) when it is not."""
    executable = shutil.which("ollama")
    if executable is None:
        return False
    result = subprocess.run([executable, "create", check_ollama_name(name), "-f", str(modelfile)],
                            cwd=modelfile.parent, capture_output=True, text=True, errors="replace", check=False)
    if result.returncode != 0:
        raise ExportError(phrase("{command} failed: {error}", command="ollama create " + name,
                                 error=failure_summary(result)), where=str(modelfile),
                          hint=phrase("check that the Ollama server runs (ollama serve), then: {command}",
                                      command=ollama_command(name, modelfile)))
    return True
