"""Export the default model to GGUF at every precision and quantization; print time, size and fidelity.

Fidelity is measured side by side in one run against transformers on the same HF folder:
the largest logit difference over a chat prompt, how often the greedy next token agrees, the
margin of the first answer token, and llama.cpp's greedy answer to a fixed question. The
shipped Q4_1 file (which the HF folder was converted from) is measured the same way.

    PYTHONPATH=. python bench/export_gguf.py [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

QUESTION = "What is the capital of France?"
PROMPT_TAIL = "日本の首都は東京です。In 2024, 12345 people visited Paris."


def main() -> None:
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.config import ModelConfig
    from engine.models.loading import model_folder
    from engine.models.registry import BUILTIN_MODELS, DEFAULT_MODEL
    from engine.paths import Home
    from engine.textwidth import format_table, human_bytes
    from export.gguf import write_gguf
    from export.quantize import QUANT_TYPES, quantize_gguf
    from tests.llama_cpp_runner import llama_greedy, llama_logits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    folder = model_folder(ModelConfig(), Home.from_env())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    chat = tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}], add_generation_prompt=True,
                                         tokenize=False)
    question_ids = tokenizer.encode(chat, add_special_tokens=False)
    ids = question_ids + tokenizer.encode(PROMPT_TAIL, add_special_tokens=False)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        reference = model(torch.tensor([ids])).logits[0].numpy()
    answer_token = int(reference[len(question_ids) - 1].argmax())

    def margin(logits) -> float:
        """How far transformers' first answer token leads all others (negative: another token wins)."""
        first = logits[len(question_ids) - 1]
        return float(first[answer_token] - np.delete(first, answer_token).max())

    print(f"transformers: first answer token {tokenizer.decode([answer_token])!r} leads by {margin(reference):.3f}")

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        started = time.perf_counter()
        f16 = write_gguf(folder, out / "model-f16.gguf", dtype="f16")
        files = {"f16": (f16, time.perf_counter() - started)}
        for quant in QUANT_TYPES:
            started = time.perf_counter()
            files[quant] = (quantize_gguf(f16, out / f"model-{quant}.gguf", quant, threads=args.threads),
                            time.perf_counter() - started)
        files["shipped q4_1"] = (BUILTIN_MODELS[DEFAULT_MODEL].gguf_path(), 0.0)
        for name, (path, seconds) in files.items():
            got = llama_logits(path, ids)
            answer = tokenizer.decode(llama_greedy(path, question_ids, 24), skip_special_tokens=True)
            rows.append([name, f"{seconds:.1f}s" if seconds else "-", human_bytes(path.stat().st_size),
                         f"{np.abs(got - reference).max():.3f}",
                         f"{(got.argmax(-1) == reference.argmax(-1)).mean():.0%}",
                         f"{margin(got):+.3f}", answer.strip()[:48]])
    print(format_table(["file", "write", "size", "max |Δlogit|", "same greedy", "margin", "greedy answer"], rows))


if __name__ == "__main__":
    main()
