"""Merge LoRA adapters into their base model in full precision, as an ordinary HF folder.

The base is always loaded unquantized (float32), also for adapters trained with QLoRA: folding
a LoRA change into 4-bit weights would round it away. Several adapters are combined as
W + sum_i weight_i * scale_i * B_i A_i: all are loaded onto the base, each layer's scale is
multiplied by the adapter's weight, and `merge_and_unload` folds them all in at once. That is
exact for any mix of ranks and target modules (peft's `add_weighted_adapter` "linear" mode
is not: it mixes the A and B matrices, not their products).

The merged model is compared with the unmerged base + adapters on a few prompts, so an export
says how faithful its weights are before anything is converted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.config import ModelConfig
from engine.errors import ExportError
from engine.messages import Message
from engine.models.tokenizer_files import save_tokenizer
from engine.phrases import Phrase, phrase
from export.adapters import AdapterInput, check_adapters_fit
from export.json_files import NOT_A_MODEL_FOLDER, read_folder_json
from export.output import artifact_directory

# Prompts whose logits (every position) compare the merged model with base + adapters.
PROBES = (
    (Message("user", "What is the capital of France?"), Message("assistant", "Paris is the capital of France.")),
    (Message("user", "日本の首都はどこですか？"), Message("assistant", "東京です。")),
    (Message("system", "You answer briefly."), Message("user", "Name a primary colour.")),
)
_SAVE_DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class MergeResult:
    folder: Path
    max_logit_diff: float  # merged vs base + adapters, largest |difference| over the probe tokens
    probe_tokens: int
    dtype: str  # the dtype the merged weights were saved in (the base's own)


def merge_adapters(base_folder: Path, adapters: Sequence[AdapterInput], out: Path, *,
                   model_config: ModelConfig = ModelConfig(),
                   on_log: Callable[[str | Phrase], None] = lambda _m: None) -> MergeResult:
    """Write `out`: the base with every adapter merged in (weights, tokenizer, chat template,
    generation config). `out` appears only when complete."""
    import torch

    from export.safetensors_files import model_safetensors_files, safetensors_index

    if not adapters:
        raise ExportError(phrase("there is no adapter to merge"), hint=phrase("name a run with a trained adapter"))
    base_folder = Path(base_folder)
    base_files = model_safetensors_files(base_folder)
    base_config = read_folder_json(base_folder, "config.json", missing=NOT_A_MODEL_FOLDER,
                                   hint=phrase("merge onto the base model folder the adapters were trained on"))
    check_adapters_fit(list(adapters), {name: shape for name, (_p, shape, _d) in safetensors_index(base_files).items()},
                       tied_head=bool(base_config.get("tie_word_embeddings")))

    save_dtype = _stored_dtype(base_config)
    on_log(phrase("loading {model} in float32 with {n} adapter(s)", model=base_folder.name, n=len(adapters)))
    model = _with_adapters(base_folder, adapters, model_config)
    tokenizer = _tokenizer(adapters[0].folder, base_folder, model_config)
    probes = [_probe_ids(tokenizer, messages) for messages in PROBES]
    reference = _logits(model, probes)
    merged = model.merge_and_unload(adapter_names=[_peft_name(i) for i in range(len(adapters))])
    merged = merged.to(getattr(torch, save_dtype))
    difference = max(float((a - b).abs().max()) for a, b in zip(_logits(merged, probes), reference, strict=True))
    on_log(phrase("merged; largest logit difference to base + adapters: {difference:.2e}", difference=difference))

    expected = sum(p.stat().st_size for p in base_files)  # same dtype as the base, same size
    with artifact_directory(Path(out), expected_bytes=expected) as tmp:
        merged.save_pretrained(tmp)
        save_tokenizer(tokenizer, tmp, sources=[adapters[0].folder, base_folder])
        _record_sources(tmp, base_folder, adapters)
    return MergeResult(Path(out), difference, sum(len(ids) for ids in probes), save_dtype)


def _with_adapters(base_folder: Path, adapters: Sequence[AdapterInput], model_config: ModelConfig):
    import torch
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    from engine.models.loading import load_model

    model = load_model(base_folder, model_config, dtype=torch.float32)
    for index, adapter in enumerate(adapters):
        try:
            if index == 0:
                model = PeftModel.from_pretrained(model, str(adapter.folder), adapter_name=_peft_name(0))
            else:
                model.load_adapter(str(adapter.folder), adapter_name=_peft_name(index))
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ExportError(phrase("{name} does not fit {base}: {error}", name=adapter.name, base=base_folder.name,
                                     error=first_line),
                              where=str(adapter.folder),
                              hint=phrase("merge an adapter onto the base it was trained on")) from None
    names = [_peft_name(i) for i in range(len(adapters))]
    for module in model.modules():
        if isinstance(module, LoraLayer):
            for name, adapter in zip(names, adapters, strict=True):
                module.set_scale(name, adapter.weight)
    model.base_model.set_adapter(names)  # all active at once: base + sum of the weighted changes
    return model.eval()


def _peft_name(index: int) -> str:
    return f"adapter{index}"


def _tokenizer(adapter_folder: Path, base_folder: Path, model_config: ModelConfig):
    """The tokenizer the adapter was trained with (saved beside it), else the base's."""
    from engine.data import ensure_chat_template
    from engine.models.loading import load_tokenizer

    source = adapter_folder if (adapter_folder / "tokenizer_config.json").is_file() else base_folder
    tokenizer = load_tokenizer(source, model_config)
    ensure_chat_template(tokenizer)  # training used the plain template on bases without one
    return tokenizer


def _probe_ids(tokenizer, messages: Sequence[Message]) -> list[int]:
    from engine.chat.template import render_chat

    last_is_user = messages[-1].role == "user"
    text = render_chat(tokenizer.chat_template, messages if last_is_user else messages[:-1],
                       special_tokens=dict(tokenizer.special_tokens_map), model="the merged model")
    if not last_is_user:
        text += messages[-1].content
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _logits(model, probes: list[list[int]]):
    import torch

    with torch.inference_mode():
        return [model(input_ids=torch.tensor([ids])).logits[0].float() for ids in probes]


def _stored_dtype(config: dict) -> str:
    """The dtype the base's weights are stored in; the merged model is saved in the same."""
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    return dtype if dtype in _SAVE_DTYPES else "float32"


def _record_sources(folder: Path, base_folder: Path, adapters: Sequence[AdapterInput]) -> None:
    """Which base and adapters the folder was merged from, for people and tools that find it later."""
    sources = {"base": str(base_folder), "adapters": [a.to_json() for a in adapters]}
    (folder / "tanren_merge.json").write_text(json.dumps(sources, ensure_ascii=False, indent=2) + "\n",
                                              encoding="utf-8")
