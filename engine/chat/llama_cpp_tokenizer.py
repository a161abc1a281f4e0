"""llama.cpp's tokenizer behind the part of the HF tokenizer interface that data rendering uses.

`engine.data.render_examples` renders a conversation with `apply_chat_template`, tokenizes a batch
of them with `tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)` and marks the
assistant's tokens by their character offsets. Offering those few members over llama.cpp lets
a GGUF file be scored on exactly the tokens llama.cpp runs (the chat prompt's tokenization:
the template rendered by the same renderer, special tokens parsed, BOS only where the template
writes it) with exactly the assistant mask training uses, instead of a second rendering path.

llama.cpp gives no offsets, so they are rebuilt from each token's bytes, which spell out the
text (a SentencePiece vocabulary may add one leading space to a piece; it is not in the text).
"""

from __future__ import annotations

import bisect
import ctypes
from collections.abc import Mapping, Sequence
from typing import Any

from engine.chat.template import render_chat
from engine.errors import TanrenError
from engine.messages import from_dicts
from engine.phrases import phrase


class LlamaCppTokenizer:
    def __init__(self, llm, *, template: str | None, special_tokens: Mapping[str, str], model: str):
        import llama_cpp

        self._llm = llm
        self._lib = llama_cpp
        self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self._special_tokens = dict(special_tokens)
        self._model = model
        self.chat_template = template
        bos, eos = llama_cpp.llama_vocab_bos(self._vocab), llama_cpp.llama_vocab_eos(self._vocab)
        self.bos_token_id = bos if bos >= 0 else None
        self.eos_token_id = eos if eos >= 0 else None
        self._adds_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))

    def apply_chat_template(self, conversation: Sequence[Mapping[str, str]], *, tokenize: bool = False,
                            add_generation_prompt: bool = False) -> str:
        if tokenize:
            raise NotImplementedError("render the text, then call the tokenizer on it")
        return render_chat(self.chat_template, from_dicts(conversation), special_tokens=self._special_tokens,
                           model=self._model, add_generation_prompt=add_generation_prompt)

    def __call__(self, text: str | Sequence[str], *, add_special_tokens: bool = True,
                 return_offsets_mapping: bool = False) -> dict[str, Any]:
        """Like a HF tokenizer: one text gives lists, a batch of texts gives lists of lists."""
        if isinstance(text, str):
            return self._encode(text, add_special_tokens, return_offsets_mapping)
        encodings = [self._encode(one, add_special_tokens, return_offsets_mapping) for one in text]
        return {key: [encoding[key] for encoding in encodings] for key in (encodings[0] if encodings else {})}

    def _encode(self, text: str, add_special_tokens: bool, return_offsets_mapping: bool) -> dict[str, Any]:
        ids = self._llm.tokenize(text.encode("utf-8"), add_bos=add_special_tokens and self._adds_bos, special=True)
        encoding: dict[str, Any] = {"input_ids": ids}
        if return_offsets_mapping:
            encoding["offset_mapping"] = self._offsets(text, ids)
        return encoding

    def _offsets(self, text: str, ids: Sequence[int]) -> list[tuple[int, int]]:
        """Character offsets of each token in `text`, from the bytes of its piece."""
        data = text.encode("utf-8")
        char_starts = []  # byte offset where each character starts
        position = 0
        for char in text:
            char_starts.append(position)
            position += len(char.encode("utf-8"))
        offsets, at = [], 0
        for token in ids:
            piece = self._piece(token)
            if data.startswith(piece, at):
                end = at + len(piece)
            elif piece.startswith(b" ") and data.startswith(piece[1:], at):
                end = at + len(piece) - 1  # the leading space SentencePiece adds to a word
            else:
                raise TanrenError(
                    phrase("llama.cpp's tokens of {model} do not spell out the rendered text at byte {at}, "
                           "so the assistant's tokens cannot be located", model=self._model, at=at), where=self._model,
                    hint=phrase("measure perplexity on all tokens (--all-tokens), or on the HF model folder"),
                )
            # from the character holding the piece's first byte to the last one it touches
            first = bisect.bisect_right(char_starts, at) - 1 if end > at else bisect.bisect_left(char_starts, at)
            offsets.append((first, bisect.bisect_left(char_starts, end)))
            at = end
        return offsets

    def _piece(self, token: int) -> bytes:
        size = 32
        for _ in range(2):  # a negative result is the size the piece needs
            buffer = ctypes.create_string_buffer(size)
            n = self._lib.llama_token_to_piece(self._vocab, token, buffer, size, 0, True)
            if n >= 0:
                return buffer.raw[:n]
            size = -n
        raise TanrenError(phrase("llama.cpp could not spell token {token} of {model}", token=token, model=self._model))
