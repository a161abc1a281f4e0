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

import numpy as np

from engine.chat.backend import DEFAULT_MAX_CONTEXT, BatchDecoder, ChatBackend, Decoder, whole_characters
from engine.chat.template import render_chat, stop_token_ids
from engine.config import ModelConfig
from engine.errors import TanrenError
from engine.messages import Message
from engine.models.loading import load_model, load_tokenizer
from engine.phrases import phrase


class TransformersBackend(ChatBackend):
    kind = "transformers"
    batches = True

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
        self._adapter_templates: dict[str, str] = {}

    @classmethod
    def load(cls, folder: Path, config: ModelConfig, *, adapters: Mapping[str, Path] | None = None,
             max_context: int = DEFAULT_MAX_CONTEXT) -> TransformersBackend:
        local = Path(config.base).expanduser()
        name = local.name if local.exists() else config.base  # a folder by its name, a hub id whole
        backend = cls(load_model(folder, config), load_tokenizer(folder, config), name=name, max_context=max_context)
        for adapter, path in (adapters or {}).items():
            backend.add_adapter(adapter, path)
        return backend

    def add_adapter(self, name: str, folder: Path) -> None:
        """Load a PEFT adapter folder onto the base under `name` (the base stays as it was)."""
        from peft import PeftModel

        if name in self.adapters:
            raise TanrenError(phrase("an adapter named {name!r} is already loaded", name=name), where=str(folder))
        _check_adapter_folder(folder)
        peft_name = _peft_name(name, taken=self._peft_names.values())
        try:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(folder), adapter_name=peft_name, is_trainable=False)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(folder), adapter_name=peft_name,
                                                       is_trainable=False).eval()
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            raise TanrenError(phrase("the adapter in {folder} does not fit {model}: {why}",
                                     folder=folder, model=self.name, why=exc), where=str(folder),
                              hint=phrase("chat with the base model the adapter was trained on")) from None
        self._peft_names[name] = peft_name
        template = _saved_template(folder)
        if template:  # e.g. the plain template training gave a base that has none
            self._adapter_templates[name] = template
        self.adapters = (*self.adapters, name)

    def encode(self, messages: Sequence[Message], adapter: str | None = None) -> list[int]:
        template = self._adapter_templates.get(adapter, self._template)
        text = render_chat(template, messages, special_tokens=self._special_tokens, model=self.name)
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

    @contextlib.contextmanager
    def _batch_decoding(self, prompts: list[list[int]], adapter: str | None) -> Iterator[BatchDecoder]:
        """The prompts decoded as one left-padded batch (engine.chat.padded_batch), which rows leave
        when they end and, on plain dynamic caches, new rows join between two steps."""
        from engine.chat.padded_batch import PaddedBatch

        with self._adapter(adapter):
            batch = PaddedBatch(self.model, self._pad_id())
            logits = batch.start(prompts)
            yield BatchDecoder(logits, batch.advance, batch.keep, batch.start if batch.joinable else None)

    def _pad_id(self) -> int:
        """A token to fill padding with (the mask hides it): the tokenizer's, or an end-of-turn token."""
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.stop_ids)

    def _score(self, sequences: list[list[int]], adapter: str | None) -> list[np.ndarray]:
        """One forward pass over the right-padded batch (padding comes after every real token,
        so it changes nothing they see)."""
        import torch

        width, device = max(map(len, sequences)), self.model.device
        ids = torch.tensor([seq + [0] * (width - len(seq)) for seq in sequences], device=device)
        attention = torch.tensor([[1] * len(seq) + [0] * (width - len(seq)) for seq in sequences], device=device)
        with self._adapter(adapter), torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=attention, use_cache=False).logits[:, :-1].float()
            targets = ids[:, 1:].unsqueeze(-1)
            # log_softmax at the targets without a second vocabulary-sized tensor
            logprobs = (logits.gather(-1, targets).squeeze(-1) - torch.logsumexp(logits, dim=-1)).double().cpu()
        return [logprobs[row, : len(seq) - 1].numpy() for row, seq in enumerate(sequences)]

    def greedy_answers(self, conversations: Sequence[Sequence[Message]], *, max_new_tokens: int,
                       adapter: str | None = None) -> list[str]:
        """The batch answered at once by `generate`: prompts left-padded (transformers derives the
        positions from the attention mask), greedy, stopping at the end-of-turn tokens."""
        import torch
        from transformers import GenerationConfig as HFGenerationConfig

        self.check_adapter(adapter)
        prompts = [self.fitted_prompt(messages, answer_tokens=max_new_tokens, adapter=adapter)
                   for messages in conversations]
        if not prompts:
            return []
        stops, pad = sorted(self.stop_ids), self._pad_id()
        width, device = max(map(len, prompts)), self.model.device
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        # Unset fields are filled from the model's generation_config: the ones that act on greedy
        # decoding are set here so that a model's own defaults (penalties, bans) cannot leak in.
        config = HFGenerationConfig(do_sample=False, num_beams=1, repetition_penalty=1.0, no_repeat_ngram_size=0,
                                    min_length=0, max_new_tokens=max_new_tokens, eos_token_id=stops,
                                    pad_token_id=pad)
        with self._busy, self._adapter(adapter), torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=attention, generation_config=config)
        return [whole_characters(self.decode(_until_stop(row.tolist(), self.stop_ids))) for row in out[:, width:]]

    def _adapter(self, adapter: str | None) -> contextlib.AbstractContextManager:
        if not self.adapters:
            return contextlib.nullcontext()
        if adapter is None:
            return self.model.disable_adapter()
        self.model.set_adapter(self._peft_names[adapter], inference_mode=True)
        return contextlib.nullcontext()


def _until_stop(ids: list[int], stop_ids: frozenset[int]) -> list[int]:
    """The answer's tokens: up to the first end-of-turn token (the rest of a row is padding)."""
    for index, token in enumerate(ids):
        if token in stop_ids:
            return ids[:index]
    return ids


def _peft_name(name: str, *, taken) -> str:
    """Run names may hold '.', which PEFT cannot use in an adapter name (it names submodules)."""
    base = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    return candidate


def _saved_template(folder: Path) -> str | None:
    """The chat template saved with an adapter (tanren saves the training tokenizer), if any."""
    if not (folder / "tokenizer_config.json").is_file():
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder).chat_template
    except (OSError, ValueError, KeyError):
        return None  # an unreadable tokenizer beside the adapter: the base's template still serves


def _check_adapter_folder(folder: Path) -> None:
    config = folder / "adapter_config.json"
    if not config.is_file():
        raise TanrenError(phrase("{folder} holds no adapter_config.json, so it is not a PEFT adapter folder",
                                 folder=folder), where=str(folder), hint=phrase("point at a run's adapter/ folder"))
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TanrenError(phrase("{file} is not valid JSON ({why})", file=config, why=exc), where=str(config)) from None
    if not (folder / "adapter_model.safetensors").is_file():
        raise TanrenError(phrase("{folder} holds no adapter_model.safetensors", folder=folder), where=str(folder),
                          hint=phrase("the run may not have finished; adapters are read from safetensors only"))
