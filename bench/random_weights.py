"""A model folder with another model's architecture and tokenizer but random weights.

Training speed and memory do not depend on the weights' values, so speed benchmarks can run
where the real weights cannot be fetched (an offline GPU box), and at sizes other than the
default model's, by overriding config fields:

    python bench/random_weights.py SOURCE_FOLDER DEST [--set hidden_size=2048 --set num_hidden_layers=24 ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "merges.txt",
                   "added_tokens.json", "special_tokens_map.json", "chat_template.jinja", "generation_config.json")


def override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--set {text!r}: write KEY=VALUE, e.g. hidden_size=2048")
    return key, json.loads(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a Hugging Face model folder (config.json and tokenizer)")
    parser.add_argument("dest", type=Path)
    parser.add_argument("--set", type=override, action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(args.source)
    for key, value in args.set:
        setattr(config, key, value)
    torch.manual_seed(0)
    # saved in the source's dtype, as its real checkpoint would be, since loaders default to "auto"
    model = AutoModelForCausalLM.from_config(config, dtype=config.dtype or torch.float32)
    args.dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.dest)
    for name in TOKENIZER_FILES:
        if (args.source / name).is_file():
            shutil.copy(args.source / name, args.dest / name)
    print(f"{args.dest}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters")


if __name__ == "__main__":
    main()
