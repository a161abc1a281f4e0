"""Preference data for DPO, ORPO (pairs) and KTO (ratings), as trl's conversational records.

trl's trainers render them through the model's chat template and score only the answers, so
the records carry messages, not text. The start message counts what the window cuts, measured
with the renderer that the data doctor and `tanren eval --metrics preference` use.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from engine.config import RunConfig
from engine.data.example import AnyExample
from engine.data.kinds import kind_name
from engine.events import EventLog, Log
from engine.phrases import phrase
from engine.train.dataset import TrainData, in_clauses


def build_preference_datasets(config: RunConfig, tokenizer, events: EventLog, kind: str) -> TrainData:
    """The train and validation splits of `config.data` as trl records; the files must hold `kind`."""
    from datasets import Dataset

    from engine.data import ensure_chat_template, load_splits

    ensure_chat_template(tokenizer)
    splits = load_splits(config.data, kind=kind, needs=config.training.objective.upper())
    lengths = _rendered_lengths(splits.train, tokenizer)
    over = sum(length > config.data.max_length for length in lengths)
    counted = phrase("data: {train} training, {validation} validation, {test} test {kind}; {tokens} training tokens",
                     train=len(splits.train), validation=len(splits.validation), test=len(splits.test),
                     kind=kind_name(kind), tokens=sum(lengths))
    cut = phrase("{count} conversations longer than max_length {max_length} are cut at its end", count=over,
                 max_length=config.data.max_length)
    events.append(Log.said(in_clauses([counted, cut] if over else [counted])))

    def dataset(examples: Sequence[AnyExample]):
        return Dataset.from_list([example.to_trl() for example in examples])

    return TrainData(dataset(splits.train), dataset(splits.validation) if splits.validation else None, sum(lengths))


def _rendered_lengths(examples: Sequence[AnyExample], tokenizer) -> list[int]:
    """The length of each conversation the model reads (a pair's chosen and its rejected one)."""
    from engine.data import render_examples

    conversations = [c for example in examples for c in example.conversations()]
    return [len(r.input_ids) for r in render_examples(conversations, tokenizer, max_length=sys.maxsize)]
