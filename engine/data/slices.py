"""Tokenize a long text in slices that give exactly the tokens of the whole, in bounded memory.

A fast tokenizer encodes one huge string about three times slower than the same text in slices
(3.1 MB of varied Japanese and English: 2.4 CPU-s whole, 0.9 sliced, without offsets) and holds
every token's offsets meanwhile (700 MB more for 2.8 MB). A slice ends where the tokenizer
cannot merge across: right after a newline or right before a space that sits between two
non-space characters. Byte-level BPE pre-tokenizers (GPT-2's,
Llama 3's, SmolLM's) always split there, so the slices' tokens are the whole text's. Tokenizers
that split elsewhere (SentencePiece ones prepend a "▁" to every string they get) are found once
by encoding a few probes both ways, and then get the text whole: slower, still exact.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterator

SLICE_CHARS = 4096  # long enough that the per-slice overhead vanishes
BATCH_CHARS = 1 << 20  # text per tokenizer call: both cores busy, a few MB of tokens alive
# A cut lies right after a newline, or right before a space, between two non-space characters.
CUT = re.compile(r"\S(?:\n(?=\S)|(?= \S))")
PROBES = ("Call it a day.\nThen 42 more (or 7) tomorrow!", "日本語の文です。\n次の行 です。 English too.",
          "tabs\tand  two spaces\n\nblank line, é accent\n- item 3.5")


def slices(text: str, size: int = SLICE_CHARS) -> Iterator[str]:
    """`text` in consecutive pieces of about `size` characters or more, cut only at CUT."""
    start = 0
    while len(text) - start > size:
        cut = CUT.search(text, start + size)
        if cut is None:
            break
        yield text[start:cut.end()]
        start = cut.end()
    yield text[start:]


class TextTokens:
    """Token ids of texts as `tokenizer(text, add_special_tokens=False)` makes them, slice by slice."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self.backend = backend if backend is not None and _slices_are_exact(backend) else None

    def batches(self, text: str) -> Iterator[list[int]]:
        """The text's ids in order, a batch of slices at a time."""
        if self.backend is None:
            yield self.tokenizer(text, add_special_tokens=False)["input_ids"]
            return
        for encoded in self._encoded(text):
            yield [token for encoding in encoded for token in encoding.ids]

    def ids(self, text: str) -> array:
        """All of the text's ids, 4 bytes each (a Python list would take 36)."""
        ids = array("i")
        for batch in self.batches(text):
            ids.extend(batch)
        return ids

    def count(self, text: str) -> int:
        if self.backend is None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return sum(len(encoding) for encoded in self._encoded(text) for encoding in encoded)

    def _encoded(self, text: str) -> Iterator[list]:
        batch, size = [], 0
        for piece in slices(text):
            batch.append(piece)
            size += len(piece)
            if size >= BATCH_CHARS:
                yield self.backend.encode_batch_fast(batch, add_special_tokens=False)
                batch, size = [], 0
        if batch:
            yield self.backend.encode_batch_fast(batch, add_special_tokens=False)


def _slices_are_exact(backend) -> bool:
    """Whether cutting at every CUT of the probes leaves their tokens as they are."""
    def encode(text: str) -> list[int]:
        return backend.encode(text, add_special_tokens=False).ids

    for probe in PROBES:
        whole = encode(probe)
        for cut in CUT.finditer(probe):
            if encode(probe[:cut.end()]) + encode(probe[cut.end():]) != whole:
                return False
    return True
