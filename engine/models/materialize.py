"""Convert a .gguf file once into an ordinary HF folder, so later loads take seconds.

transformers can read a GGUF file directly, but it dequantizes every tensor on each load
(about 40 s for the default model) and refuses `save_pretrained` on the result. We load it
fully dequantized, check that no packed GGUF layer is left, detach the GGUF quantizer (its
only remaining role is to veto serialization), and save plain safetensors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from engine.atomic import atomic_directory
from engine.errors import TanrenError
from engine.events import Said
from engine.locking import file_lock
from engine.models.resolve import ResolvedModel
from engine.phrases import phrase

MARKER = "tanren_source.json"


def materialize(resolved: ResolvedModel, *, on_status: Callable[[Said], None] = lambda _m: None) -> Path:
    """Return the HF folder for `resolved`, converting its GGUF source first if needed; `on_status`
    hears what happens as phrases, which its caller records or shows in the user's language."""
    if not resolved.needs_materializing:
        return resolved.folder
    assert resolved.gguf_source is not None
    lock = resolved.folder.with_name(f".{resolved.folder.name}.lock")
    with file_lock(lock):
        if not resolved.needs_materializing:  # another process finished it while we waited
            return resolved.folder
        on_status(phrase("converting {file} into {folder} (once; about a minute)", file=resolved.gguf_source.name,
                         folder=resolved.folder))
        with atomic_directory(resolved.folder) as tmp:
            _convert(resolved.gguf_source, tmp, name=resolved.spec)
    on_status(phrase("ready: {folder}", folder=resolved.folder))
    return resolved.folder


def check_gguf(path: Path) -> str:
    """Return the file's architecture, or explain why it is not a readable GGUF file."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
        field = reader.get_field("general.architecture")
        return field.contents() if field is not None else "unknown"
    except Exception as exc:  # the reader raises struct, value and index errors on damaged files
        why = f"{type(exc).__name__}: {exc}"
        raise TanrenError(
            phrase("{file} is not a readable GGUF file ({why})", file=path.name, why=why),
            where=str(path), hint=phrase("the file may be truncated: download or export it again"),
        ) from None


def _convert(gguf: Path, out: Path, *, name: str) -> None:
    import torch

    from engine.imports import transformers_loading

    check_gguf(gguf)
    names = ("AutoModelForCausalLM", "AutoTokenizer", "GenerationConfig", "GgufConfig")
    try:
        with transformers_loading(*names) as (AutoModelForCausalLM, AutoTokenizer, GenerationConfig, GgufConfig):
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent,
                gguf_file=gguf.name,
                quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True),
                dtype=torch.float32,
            )
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise TanrenError(phrase("transformers cannot read {file}: {why}", file=gguf.name, why=str(exc)), where=str(gguf),
                          hint=phrase("check that the file is a complete GGUF of a supported architecture")) from None
    _detach_gguf_quantizer(model, gguf)
    model.config.name_or_path = name
    model.generation_config = _generation_config(model, tokenizer, GenerationConfig)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / MARKER).write_text(
        json.dumps({"source": str(gguf), "size_bytes": gguf.stat().st_size}, indent=2) + "\n", encoding="utf-8"
    )


def _detach_gguf_quantizer(model, gguf: Path) -> None:
    import torch

    packed = [n for n, m in model.named_modules() if type(m).__name__.startswith("Gguf")]
    not_float = [n for n, p in model.named_parameters() if not torch.is_floating_point(p)]
    if packed or not_float:
        raise TanrenError(phrase("{file} did not load as plain float weights ({layers})", file=gguf.name,
                                 layers=(packed + not_float)[:3]), where=str(gguf))
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)


def _generation_config(model, tokenizer, cls):
    """Stop on the end-of-turn token as well as EOS, as the model's own HF release does."""
    stop_ids = [model.config.eos_token_id, tokenizer.eos_token_id]
    for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            stop_ids.append(token_id)
    stop_ids = sorted({i for i in stop_ids if isinstance(i, int)})
    return cls(
        bos_token_id=model.config.bos_token_id,
        eos_token_id=stop_ids[0] if len(stop_ids) == 1 else stop_ids,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0],
    )
