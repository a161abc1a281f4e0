"""Chat speed of the default model: transformers vs a Q8_0 GGUF in llama.cpp, side by side.

    PYTHONPATH=. python bench/chat_speed.py [--gguf PATH] [--runs 3] [--tokens 128] [--threads N]

The Q8_0 file is made from the materialized HF folder with the export module (`write_gguf`
to F16, then llama.cpp's quantizer) and cached under $TANREN_HOME/bench/; `--gguf` uses a
file you already have. Both backends answer the same prompt with the same parameters and
seed, alternating run by run so that a change in machine load hits both alike. Figures:
time to first token (prompt formatting + prefill + first sample) and decoding tokens/s after
the first token, medians over the runs. Goals: GGUF decoding >= 4x transformers, TTFT < 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from engine.chat.backend import ChatBackend, GenerationStats
from engine.config import GenerationConfig, ModelConfig
from engine.messages import Message
from engine.models.loading import model_folder
from engine.models.registry import DEFAULT_MODEL
from engine.paths import Home

PROMPT = [Message("user", "Write a long story about a dragon who learns to cook. Describe every dish.")]


def q8_0_gguf(home: Home, folder: Path) -> Path:
    out = home.root / "bench" / f"{DEFAULT_MODEL}.Q8_0.gguf"
    if out.is_file():
        return out
    from export.gguf import write_gguf
    from export.quantize import quantize_gguf

    f16 = out.with_name(f"{DEFAULT_MODEL}.F16.gguf")
    print(f"writing {f16.name} and {out.name} with the export module ...", file=sys.stderr)
    write_gguf(folder, f16, dtype="f16")
    quantize_gguf(f16, out, "q8_0")
    f16.unlink()
    return out


def measure(backend: ChatBackend, params: GenerationConfig) -> GenerationStats:
    for _ in backend.stream_chat(PROMPT, params):
        pass
    return backend.last_stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, help="Q8_0 GGUF of the default model (default: export one)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128, help="max new tokens per answer")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="CPU threads for both")
    args = parser.parse_args()

    import torch

    from engine.chat.llama_cpp_backend import LlamaCppBackend
    from engine.chat.transformers_backend import TransformersBackend

    torch.set_num_threads(args.threads)
    home = Home.from_env()
    folder = model_folder(ModelConfig(), home, on_status=lambda m: print(m, file=sys.stderr))
    gguf = args.gguf or q8_0_gguf(home, folder)
    backends = {
        "transformers (fp32)": TransformersBackend.load(folder, ModelConfig()),
        f"llama.cpp ({gguf.name})": LlamaCppBackend.load(gguf, threads=args.threads),
    }
    params = GenerationConfig(max_new_tokens=args.tokens, seed=0)
    results: dict[str, list[GenerationStats]] = {name: [] for name in backends}
    for backend in backends.values():
        measure(backend, params)  # warm-up: first-call allocations and kernel selection
    for run in range(args.runs):
        for name, backend in backends.items():
            results[name].append(measure(backend, params))
            print(f"run {run + 1} {name}: {results[name][-1].summary()}", file=sys.stderr)

    print(f"{DEFAULT_MODEL}, {args.runs} runs of up to {args.tokens} tokens, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    medians = {}
    for name, stats in results.items():
        ttft = statistics.median(s.ttft_s for s in stats)
        speed = statistics.median(s.tokens_per_s for s in stats)
        tokens = statistics.median(s.new_tokens for s in stats)
        medians[name] = (ttft, speed)
        print(f"  {name:<45} TTFT {ttft * 1000:7.1f} ms   {speed:7.1f} tokens/s   ({tokens:.0f} tokens, "
              f"prompt {stats[0].prompt_tokens})")
    (hf_ttft, hf_speed), (gguf_ttft, gguf_speed) = medians.values()
    print(f"  llama.cpp / transformers: decoding {gguf_speed / hf_speed:.1f}x (goal >= 4x), "
          f"TTFT {hf_ttft / gguf_ttft:.1f}x faster; GGUF TTFT {gguf_ttft * 1000:.0f} ms (goal < 300 ms)")
    for backend in backends.values():
        backend.close()


if __name__ == "__main__":
    main()
