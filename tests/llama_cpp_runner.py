"""Run GGUF files in llama.cpp (llama-cpp-python) for tests: logits, greedy text, tokenization.

llama.cpp's AMX matrix kernels crash (SIGSEGV in ggml_backend_amx_mul_mat) on CPUs that report
AMX inside this VM, on any quantized model and batch > 1. Loading with llama.cpp's "extra
buffer types" off (its CLI flag --no-repack) avoids those kernels; llama-cpp-python exposes no
argument for it, so the default model parameters are adjusted while the model loads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def open_llama(path: Path, **kwargs) -> Iterator:
    import llama_cpp
    from llama_cpp import llama as llama_module

    bindings = llama_module.llama_cpp
    default_params = bindings.llama_model_default_params

    def without_extra_buffers():
        params = default_params()
        params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = without_extra_buffers
    try:
        llm = llama_cpp.Llama(str(path), verbose=False, **kwargs)
    finally:
        bindings.llama_model_default_params = default_params
    try:
        yield llm
    finally:
        llm.close()


def llama_logits(path: Path, ids: list[int], **kwargs):
    import numpy as np

    with open_llama(path, n_ctx=max(64, 2 * len(ids)), logits_all=True, **kwargs) as llm:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])


def llama_greedy(path: Path, ids: list[int], max_new_tokens: int) -> list[int]:
    """Greedy continuation of `ids`, stopping after an end-of-generation token (which is kept)."""
    import llama_cpp
    import numpy as np

    with open_llama(path, n_ctx=len(ids) + max_new_tokens + 8, logits_all=True) as llm:
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        llm.eval(ids)
        new: list[int] = []
        while len(new) < max_new_tokens:
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            new.append(token)
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                break
            llm.eval([token])
        return new


def llama_tokenize(path: Path, text: str) -> list[int]:
    with open_llama(path, vocab_only=True) as llm:
        return llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)


def llama_is_end_of_generation(path: Path, token_id: int) -> bool:
    import llama_cpp

    with open_llama(path, vocab_only=True) as llm:
        return bool(llama_cpp.llama_vocab_is_eog(llama_cpp.llama_model_get_vocab(llm.model), token_id))
