"""Perplexity throughput (tokens/s) of the default model through transformers and llama.cpp.

Side by side in one run, on the held-out sample (engine/data/samples/heldout.jsonl), every
token scored (so tokens/s counts every token run through the model): transformers on the
default model's HF folder (fp32, batched, and one example at a time), and llama.cpp on GGUF
files made from that same folder in a temporary directory - F16 by export.gguf.write_gguf, then
Q8_0 by export.quantize.quantize_gguf. Each is measured once to warm up, then timed. The
perplexities are printed too: the F16 file must agree with transformers.

    PYTHONPATH=. python bench/bench_perplexity.py [--repeat N] [--limit N] [--threads N] [--quant q8_0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    from engine.chat.llama_cpp_backend import LlamaCppBackend
    from engine.chat.transformers_backend import TransformersBackend
    from engine.config import ModelConfig
    from engine.data import SAMPLE_HELDOUT, load_examples
    from engine.models.loading import model_folder
    from engine.paths import Home
    from engine.textwidth import format_table
    from evals.perplexity import measure_perplexity
    from export.gguf import write_gguf
    from export.quantize import quantize_gguf

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="timed passes over the data (default 2)")
    parser.add_argument("--limit", type=int, help="only the first N held-out examples (default all 40)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="CPU threads for both backends (default: all cores)")
    parser.add_argument("--quant", default="q8_0", help="quantization of the second GGUF (default q8_0)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    examples = load_examples(SAMPLE_HELDOUT)[:args.limit]
    folder = model_folder(ModelConfig(), Home.from_env(), on_status=print)

    def timed(backend, **options) -> tuple[float, float, int]:
        measure_perplexity(backend, examples, assistant_only=False, **options)  # warm-up
        start = time.perf_counter()
        for _ in range(args.repeat):
            result = measure_perplexity(backend, examples, assistant_only=False, **options)
        seconds = (time.perf_counter() - start) / args.repeat
        return result.tokens / seconds, result.perplexity, result.tokens

    rows: list[tuple[str, float, float, int]] = []
    with TransformersBackend.load(folder, ModelConfig(dtype="float32")) as hf:
        rows.append(("transformers fp32, batched", *timed(hf)))
        rows.append(("transformers fp32, one example per pass", *timed(hf, batch_tokens=1)))
    with tempfile.TemporaryDirectory() as scratch:
        f16 = write_gguf(folder, Path(scratch) / "default.F16.gguf", dtype="f16")
        quantized = quantize_gguf(f16, Path(scratch) / f"default.{args.quant.upper()}.gguf", args.quant)
        for label, path in (("llama.cpp F16", f16), (f"llama.cpp {args.quant.upper()}", quantized)):
            with LlamaCppBackend.load(path, threads=args.threads) as gguf:
                rows.append((label, *timed(gguf)))

    reference = rows[0][1]
    print(f"\n{len(examples)} held-out examples, {rows[0][3]} tokens scored per pass, {args.repeat} timed passes, "
          f"{args.threads} threads\n")
    print(format_table(
        ["backend", "tokens/s", "vs transformers", "perplexity"],
        [[label, f"{speed:,.0f}", f"{speed / reference:.2f}x", f"{ppl:.4f}"] for label, speed, ppl, _ in rows],
    ))


if __name__ == "__main__":
    main()
