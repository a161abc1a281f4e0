"""The pseudo language's scan, shared by the workbench's and the CLI's tests: in it every catalog
message shows as ⟦message⟧, so a word outside the brackets bypassed the catalog, unless it is
data, a name or a number that an allowlist covers."""

from __future__ import annotations

import re

WRAPPED = re.compile(r"⟦[^⟦⟧]*⟧")
# words that are never translated, wherever they are shown
NEUTRAL = [
    r"[-+(]*[\d.,:/%]+(e[-+]\d+)?\)?|[KMG]iB|pt\)|\d+(h\d+m|m\d+s|s)",  # numbers, sizes, ratios, times, changes
    r"鍛錬|tanren",  # the name
    r"CPU|RAM|GPU\d?:?|NVIDIA|H100|80GB|HBM3|URL",  # the machine, as every tool names it
    r"loss|eval|lr|grad|tok/s|mem|top_p|ROUGE(-[12L])?|LoRA|GGUF|SFT|KTO|DPO",  # metric and method names
    r"lora|qlora|full|sft|dpo|orpo|kto",  # config values (adapter.method, training.objective)
    r"[\w.-]+\.(jsonl|json|csv|parquet)(:\d+:?)?|[·→|;●]",  # files (and lines), separators, marks
    r"[a-z_]+(\.[a-z_]+)+:?|name:|eval_loss",  # config field names (generation.system_prompt), metric names
]


def allowlist(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join([*NEUTRAL, *patterns]))


def outside_catalog(text: str, allowed: re.Pattern[str]) -> list[str]:
    """The words of `text` that no ⟦…⟧ holds and `allowed` does not cover (words are split at
    spaces, borders, bars and the loss plot's braille)."""
    previous = None
    while previous != text:  # a message inside another one: take the inner ones out first
        previous, text = text, WRAPPED.sub(" ", text)
    words = re.split(r"[\s│┃─━┤╭╮╰╯▔▁▏▕▎▍▌▋▊▉█▐░▒▓▄▆▇\u2800-\u28ff]+", text)
    return [word for word in words if word and not allowed.fullmatch(word)]
