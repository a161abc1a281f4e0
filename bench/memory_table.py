"""The README's memory table: tanren's estimate (engine/train/estimate.py) for 8B, 32B and 70B
models in lora and qlora on 24, 48 and 80 GB GPUs, from their published config.json fields
(written out below; nothing is downloaded).

    python bench/memory_table.py [--micro-batch 1] [--max-length 2048]

Each cell is the fewest GPUs of that size the run fits on, and how: one GPU alone, or N GPUs
with FSDP (weights, gradients and optimizer state sharded; ZeRO-3 needs the same), then with
the optimizer state (and then the weights) offloaded to CPU RAM. A GPU of "24 GB" counts as
24 GiB less 1 GiB for the CUDA context and the allocator's slack.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.train.estimate import ModelShape, Setup, estimate  # noqa: E402

GIB = 1024**3
RESERVED = 1 * GIB
GPUS = (24, 48, 80)
COUNTS = (1, 2, 4, 8)

# the fields of each model's config.json on the Hugging Face Hub
MODELS = {
    "Llama-3.1-8B": {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
                     "intermediate_size": 14336, "num_attention_heads": 32, "num_key_value_heads": 8,
                     "head_dim": 128, "vocab_size": 128256, "tie_word_embeddings": False, "torch_dtype": "bfloat16"},
    "Qwen2.5-32B": {"model_type": "qwen2", "hidden_size": 5120, "num_hidden_layers": 64,
                    "intermediate_size": 27648, "num_attention_heads": 40, "num_key_value_heads": 8,
                    "vocab_size": 152064, "tie_word_embeddings": False, "torch_dtype": "bfloat16"},
    "Qwen3-32B": {"model_type": "qwen3", "hidden_size": 5120, "num_hidden_layers": 64,
                  "intermediate_size": 25600, "num_attention_heads": 64, "num_key_value_heads": 8,
                  "head_dim": 128, "vocab_size": 151936, "tie_word_embeddings": False, "torch_dtype": "bfloat16"},
    "Llama-3.1-70B": {"model_type": "llama", "hidden_size": 8192, "num_hidden_layers": 80,
                      "intermediate_size": 28672, "num_attention_heads": 64, "num_key_value_heads": 8,
                      "head_dim": 128, "vocab_size": 128256, "tie_word_embeddings": False, "torch_dtype": "bfloat16"},
}


def ways(setup: Setup):
    """The ways to train, cheapest first: (label, setup)."""
    yield "1 GPU", setup
    for count in COUNTS[1:]:
        yield f"{count}x FSDP", dataclasses.replace(setup, strategy="fsdp", processes=count)
    for offload in ("optimizer", "all"):
        for count in COUNTS[1:]:
            yield f"{count}x ZeRO-3, offload {offload}", dataclasses.replace(
                setup, strategy="zero3", processes=count, offload=offload)


def cell(shape: ModelShape, setup: Setup, size: int) -> str:
    """The first way that fits a GPU of `size` GB, with the GiB each GPU (and RAM, offloading) holds."""
    for label, way in ways(setup):
        need = estimate(shape, way)
        if need.total <= size * GIB - RESERVED:
            ram = f" + {gib(need.offloaded)} in RAM per GPU" if need.offloaded else ""
            return f"{label} ({gib(need.total)}{ram})"
    return "no"


def gib(size: float) -> str:
    return f"{size / GIB:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--micro-batch", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=2048)
    args = parser.parse_args()
    print("| model | params | method | one GPU needs, GiB | " + " | ".join(f"{g} GB GPUs" for g in GPUS) + " |")
    print("|---|---|---|---|" + "---|" * len(GPUS))
    for name, values in MODELS.items():
        shape = ModelShape.from_config(values)
        for method in ("lora", "qlora"):
            setup = Setup(method=method, precision="bf16", micro_batch=args.micro_batch, max_length=args.max_length)
            cells = " | ".join(cell(shape, setup, g) for g in GPUS)
            print(f"| {name} | {shape.params() / 1e9:.2f}B | {method} | {gib(estimate(shape, setup).total)} | {cells} |")


if __name__ == "__main__":
    main()
