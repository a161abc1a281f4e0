"""Chat through transformers, with PEFT adapters hot-swapped on one loaded base.

Every adapter is loaded once onto the same base model; an answer picks one with
`set_adapter`, or runs the base with the adapters disabled, so switching costs nothing and the
base's weights are never touched (switching back gives the base's logits bit for bit).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from engine.chat.backend import DEFAULT_MAX_CONTEXT, ChatBackend, Decoder
from engine.chat.template import render_chat, stop_token_ids
from engine.config import ModelConfig
from engine.errors import TanrenError
from engine.messages import Message
from engine.models.loading import load_model, load_tokenizer


class TransformersBackend(ChatBackend):
    kind = "transformers"

    def __init__(self, model, tokenizer, *, name: str, max_context: int = DEFAULT_MAX_CONTEXT):
        super().__init__()
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        trained = getattr(model.config, "max_position_embeddings", None) or max_context
        self.context_length = min(trained, max_context)
        vocab = tokenizer.get_vocab()
        eos = model.generation_config.eos_token_id if model.generation_config is not None else None
        self.stop_ids = stop_token_ids(
            [*(eos if isinstance(eos, list) else [eos]), tokenizer.eos_token_id], vocab.get
        )
        self._template = tokenizer.chat_template
        self._special_tokens = dict(tokenizer.special_tokens_map)
        self._peft_names: dict[str, str] = {}

    @classmethod
    def load(cls, folder: Path, config: ModelConfig, *, adapters: Mapping[str, Path] | None = None,
             max_context: int = DEFAULT_MAX_CONTEXT) -> TransformersBackend:
        local = Path(config.base).expanduser()
        name = local.name if local.exists() else config.base  # a folder by its name, a hub id whole
        backend = cls(load_model(folder, config), load_tokenizer(folder, config), name=name, max_context=max_context)
        for name, path in (adapters or {}).items():
            backend.add_adapter(name, path)
        return backend

    def add_adapter(self, name: str, folder: Path) -> None:
        """Load a PEFT adapter folder onto the base under `name` (the base stays as it was)."""
        from peft import PeftModel

        if name in self.adapters:
            raise TanrenError(f"an adapter named {name!r} is already loaded", where=str(folder))
        _check_adapter_folder(folder)
        peft_name = _peft_name(name, taken=self._peft_names.values())
        try:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(folder), adapter_name=peft_name, is_trainable=False)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(folder), adapter_name=peft_name,
                                                       is_trainable=False).eval()
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            raise TanrenError(f"the adapter in {folder} does not fit {self.name}: {exc}", where=str(folder),
                              hint="chat with the base model the adapter was trained on") from None
        self._peft_names[name] = peft_name
        self.adapters = (*self.adapters, name)

    def encode(self, messages: Sequence[Message]) -> list[int]:
        text = render_chat(self._template, messages, special_tokens=self._special_tokens, model=self.name)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        # No clean-up of spaces: the text of a prefix must stay a prefix of the longer text.
        return self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    @contextlib.contextmanager
    def _decoding(self, prompt_ids: list[int], adapter: str | None) -> Iterator[Decoder]:
        import torch

        cache = None

        def forward(ids: list[int]):
            nonlocal cache
            # inference_mode per call, not around the generator: it is thread state, and the
            # caller's code runs on this thread between two tokens.
            with torch.inference_mode():
                out = self.model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True,
                                 logits_to_keep=1)
            cache = out.past_key_values
            return out.logits[0, -1].float().numpy()

        with self._adapter(adapter):
            yield Decoder(forward(prompt_ids), lambda token: forward([token]))

    def _adapter(self, adapter: str | None) -> contextlib.AbstractContextManager:
        if not self.adapters:
            return contextlib.nullcontext()
        if adapter is None:
            return self.model.disable_adapter()
        self.model.set_adapter(self._peft_names[adapter], inference_mode=True)
        return contextlib.nullcontext()


def _peft_name(name: str, *, taken) -> str:
    """Run names may hold '.', which PEFT cannot use in an adapter name (it names submodules)."""
    base = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    return candidate


def _check_adapter_folder(folder: Path) -> None:
    config = folder / "adapter_config.json"
    if not config.is_file():
        raise TanrenError(f"{folder} holds no adapter_config.json, so it is not a PEFT adapter folder",
                          where=str(folder), hint="point at a run's adapter/ folder")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TanrenError(f"{config} is not valid JSON ({exc})", where=str(config)) from None
    if not (folder / "adapter_model.safetensors").is_file():
        raise TanrenError(f"{folder} holds no adapter_model.safetensors", where=str(folder),
                          hint="the run may not have finished; adapters are read from safetensors only")
