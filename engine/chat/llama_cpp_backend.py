"""Chat through llama.cpp (llama-cpp-python) on a GGUF file, formatted exactly like transformers.

The chat template comes from the file's `tokenizer.chat_template` metadata and is rendered by
the same renderer as the transformers backend; llama.cpp tokenizes the text with special
tokens parsed and no BOS added (the template places BOS). For the default model the prompt
ids are identical to the HF tokenizer's (tests/test_chat_real_model.py checks it).

Why llama.cpp "answered wrong" for the default model's shipped GGUF (investigated on the
2-core Xeon dev box; see README "Chat"):
1. Not the prompt: llama.cpp's tokenization of the rendered template (pre-tokenizer
   `smollm`, add_bos_token false) is token-for-token the HF tokenizer's, with one BOS.
2. On CPUs that report AMX (this Xeon), llama.cpp puts Q4_1/Q8_0 weights into its AMX
   "extra" buffer type, and the first matrix multiply dies on `ldtilecfg` (a general
   protection fault in ggml_backend_amx_mul_mat: segfault). We load without extra buffer
   types there (`_no_amx`), which uses the ordinary AVX-512 kernels.
3. The rest is arithmetic, not a bug: llama.cpp multiplies Q4_1/Q8_0 weights with
   activations rounded to 8 bits, which moves logits by up to ~1.8 against fp32 on the same
   weights. For "What is the capital of France?" the model's first answer token is a
   near tie - "The" (-> "The capital of France is Paris.") leads "L" (-> "L'Étoile, ...") by
   0.08 in fp32 - so greedy decoding of the Q4_1 or Q8_0 file takes the other branch. An F16
   or F32 GGUF of the very same weights gives transformers' logits to 0.02 and its answer
   token for token. Both backends therefore agree "within quantization", and compare mode
   shows where they part.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from engine.chat.backend import DEFAULT_MAX_CONTEXT, ChatBackend, Decoder
from engine.chat.llama_cpp_tokenizer import LlamaCppTokenizer
from engine.chat.template import render_chat, stop_token_ids
from engine.errors import TanrenError
from engine.messages import Message
from engine.phrases import phrase

_PARAMS_PATCH = threading.Lock()


def cpu_has_amx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return any(line.startswith("flags") and " amx_tile" in line for line in handle)
    except OSError:
        return False


@contextlib.contextmanager
def _no_amx() -> Iterator[None]:
    """Make `Llama()` load weights without llama.cpp's extra (AMX, repack) buffer types.

    llama-cpp-python builds its model parameters from `llama_model_default_params()` inside
    `Llama.__init__` and offers no argument for `use_extra_bufts`, so the defaults are
    swapped for the duration of one load.
    """
    import llama_cpp.llama_cpp as lib

    original = lib.llama_model_default_params

    def defaults():
        params = original()
        params.use_extra_bufts = False
        return params

    with _PARAMS_PATCH:
        lib.llama_model_default_params = defaults
        try:
            yield
        finally:
            lib.llama_model_default_params = original


class LlamaCppBackend(ChatBackend):
    kind = "llama.cpp"

    def __init__(self, llm, *, name: str, max_context: int = DEFAULT_MAX_CONTEXT):
        import llama_cpp

        super().__init__()
        self.llm = llm
        self.name = name
        self._lib = llama_cpp
        self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self.context_length = min(llama_cpp.llama_model_n_ctx_train(llm.model), llm.n_ctx(), max_context)
        self._template = llm.metadata.get("tokenizer.chat_template")
        bos, eos = llama_cpp.llama_vocab_bos(self._vocab), llama_cpp.llama_vocab_eos(self._vocab)
        self._special_tokens = {key: self._token_text(token) for key, token in (("bos_token", bos), ("eos_token", eos))
                                if token >= 0}
        self.stop_ids = stop_token_ids([eos, llama_cpp.llama_vocab_eot(self._vocab)], self._single_token)
        self.tokenizer = LlamaCppTokenizer(llm, template=self._template, special_tokens=self._special_tokens,
                                           model=name)

    @classmethod
    def load(cls, path: Path, *, max_context: int = DEFAULT_MAX_CONTEXT, threads: int | None = None) -> LlamaCppBackend:
        from llama_cpp import Llama

        from engine.models.materialize import check_gguf

        check_gguf(path)
        threads = threads or len(os.sched_getaffinity(0))
        guard = _no_amx() if cpu_has_amx() else contextlib.nullcontext()
        try:
            with guard:
                llm = Llama(str(path), n_ctx=max_context, n_batch=512, n_threads=threads,
                            n_threads_batch=threads, verbose=False)
        except ValueError as exc:
            raise TanrenError(phrase("llama.cpp cannot load {file}: {why}", file=path.name, why=exc), where=str(path),
                              hint=phrase("check that the file is a complete GGUF of an architecture llama.cpp "
                                          "supports")) from None
        return cls(llm, name=path.name, max_context=max_context)

    def close(self) -> None:
        with self._busy:
            self.llm.close()

    def encode(self, messages: Sequence[Message], adapter: str | None = None) -> list[int]:
        text = render_chat(self._template, messages, special_tokens=self._special_tokens, model=self.name)
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def decode(self, ids: Sequence[int]) -> str:
        # remove_special also drops an SPM model's leading space, as HF's decode does.
        return self._detokenize(ids, remove_special=True, unparse_special=False)

    @contextlib.contextmanager
    def _decoding(self, prompt_ids: list[int], adapter: str | None) -> Iterator[Decoder]:
        llm, n_vocab = self.llm, self._lib.llama_vocab_n_tokens(self._vocab)

        def forward(ids: list[int]) -> np.ndarray:
            llm.eval(ids)
            logits = self._lib.llama_get_logits_ith(llm.ctx, -1)
            return np.ctypeslib.as_array(logits, shape=(n_vocab,)).copy()

        llm.reset()
        try:
            yield Decoder(forward(prompt_ids), lambda token: forward([token]))
        finally:
            llm.reset()

    def _score(self, sequences: list[list[int]], adapter: str | None) -> list[np.ndarray]:
        return [self._score_one(ids) for ids in sequences]

    def _score_one(self, ids: list[int]) -> np.ndarray:
        """Decode `ids` from an empty cache in batches that ask for every position's logits
        (the chat decoder asks only for the last one, and `Llama(logits_all=True)` would keep
        a context-sized copy of all logits for every chat)."""
        lib, ctx = self._lib, self.llm.ctx
        n_vocab, n_batch = lib.llama_vocab_n_tokens(self._vocab), self.llm.n_batch
        logprobs = np.empty(len(ids) - 1, dtype=np.float64)
        batch = lib.llama_batch_init(n_batch, 0, 1)
        self.llm.reset()
        lib.llama_memory_clear(lib.llama_get_memory(ctx), True)
        try:
            for start in range(0, len(ids) - 1, n_batch):  # the last token predicts nothing
                chunk = ids[start:min(start + n_batch, len(ids) - 1)]
                batch.n_tokens = len(chunk)
                for i, token in enumerate(chunk):
                    batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, start + i, 1, True
                    batch.seq_id[i][0] = 0
                if (status := lib.llama_decode(ctx, batch)) != 0:
                    raise TanrenError(phrase("llama.cpp could not run {model} on {count} tokens (status {status})",
                                             model=self.name, count=len(ids), status=status))
                logits = np.ctypeslib.as_array(lib.llama_get_logits(ctx), shape=(len(chunk), n_vocab))
                logprobs[start:start + len(chunk)] = _target_logprobs(logits, ids[start + 1:start + 1 + len(chunk)])
        finally:
            lib.llama_batch_free(batch)
            self.llm.reset()
        return logprobs

    def _token_text(self, token: int) -> str:
        return self._detokenize([token], remove_special=False, unparse_special=True)

    def _single_token(self, text: str) -> int | None:
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return ids[0] if len(ids) == 1 and self._token_text(ids[0]) == text else None

    def _detokenize(self, ids: Sequence[int], *, remove_special: bool, unparse_special: bool) -> str:
        tokens = (self._lib.llama_token * len(ids))(*ids)
        size = 64 + 16 * len(ids)
        for _ in range(2):  # a negative result is the size the text needs
            buffer = ctypes.create_string_buffer(size)
            n = self._lib.llama_detokenize(self._vocab, tokens, len(ids), buffer, size, remove_special, unparse_special)
            if n >= 0:
                return buffer.raw[:n].decode("utf-8", errors="replace")
            size = -n
        raise TanrenError(phrase("llama.cpp could not turn {count} tokens of {model} into text",
                                 count=len(ids), model=self.name))


def _target_logprobs(logits: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """log_softmax(logits)[i, targets[i]] for each row (sums in float64)."""
    top = logits.max(axis=1)
    log_norm = top + np.log(np.exp(logits - top[:, None]).sum(axis=1, dtype=np.float64))
    return logits[np.arange(len(targets)), targets].astype(np.float64) - log_norm
