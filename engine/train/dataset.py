"""Turn the configured data files into pre-tokenized datasets with assistant-only masks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.config import RunConfig
from engine.errors import ConfigError
from engine.events import EventLog, Log


@dataclass(frozen=True)
class TrainData:
    train: Any                 # datasets.Dataset with input_ids and assistant_masks
    validation: Any | None
    train_tokens: int


def build_datasets(config: RunConfig, tokenizer, events: EventLog) -> TrainData:
    from engine.data import ensure_chat_template, load_splits

    if not config.data.path:
        raise ConfigError("no training data given", where="data.path", hint="pass --data FILE (.jsonl, .json, .csv, .parquet)")
    ensure_chat_template(tokenizer)
    splits = load_splits(config.data)
    if not splits.train:
        raise ConfigError(f"{config.data.path} leaves no training examples after the split", where="data.split")
    train, tokens, cut, untrained = _tokenize(splits.train, tokenizer, config)
    validation = _tokenize(splits.validation, tokenizer, config)[0] if splits.validation else None
    events.append(Log(
        f"data: {len(splits.train)} training, {len(splits.validation)} validation, {len(splits.test)} test examples; "
        f"{tokens} training tokens" + (f"; {cut} tokens cut at max_length {config.data.max_length}" if cut else "")
        + (f"; {untrained} left out, their answers cut away at max_length" if untrained else "")
    ))
    return TrainData(train, validation, tokens)


def _tokenize(examples: Sequence, tokenizer, config: RunConfig) -> tuple[Any, int, int, int]:
    """The dataset, its tokens, the tokens cut at max_length, and how many examples were left out
    because the cut took every trained token (a batch of them would have no loss to average)."""
    from datasets import Dataset

    from engine.data import render_examples

    rendered = render_examples(examples, tokenizer, max_length=config.data.max_length,
                               assistant_only=config.data.assistant_only_loss)
    kept = [r for r in rendered if any(r.assistant_mask)]
    dataset = Dataset.from_dict({
        "input_ids": [r.input_ids for r in kept],
        "assistant_masks": [r.assistant_mask for r in kept],
    })
    return (dataset, sum(len(r.input_ids) for r in kept), sum(r.truncated_tokens for r in rendered),
            len(rendered) - len(kept))
