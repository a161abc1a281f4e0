"""The shared sampler follows transformers' logits processors, so both backends sample alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from engine.chat.sampling import Sampler
from engine.config import GenerationConfig


def _hf_distribution(logits: np.ndarray, context: list[int], params: GenerationConfig) -> np.ndarray:
    processors = LogitsProcessorList([
        RepetitionPenaltyLogitsProcessor(params.repetition_penalty),
        TemperatureLogitsWarper(params.temperature),
        *([TopKLogitsWarper(params.top_k)] if params.top_k else []),  # generate() skips top_k=0 too
        TopPLogitsWarper(params.top_p),
    ])
    scores = processors(torch.tensor([context]), torch.tensor(logits[None], dtype=torch.float32))
    return torch.softmax(scores, dim=-1)[0].double().numpy()


@pytest.mark.parametrize("params", [
    GenerationConfig(),
    GenerationConfig(temperature=1.3, top_p=0.5, top_k=10, repetition_penalty=1.5),
    GenerationConfig(temperature=0.4, top_p=1.0, top_k=0, repetition_penalty=1.0),
])
def test_distribution_matches_transformers(params: GenerationConfig) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=500).astype(np.float32)
    context = [int(i) for i in rng.integers(0, 500, size=40)]
    sampler = Sampler(params, context, seed=0)
    ids, probs = sampler.candidates(logits)
    ours = np.zeros(500)
    ours[ids] = probs
    np.testing.assert_allclose(ours, _hf_distribution(logits, context, params), atol=1e-5)


def test_greedy_takes_the_penalized_argmax() -> None:
    logits = np.array([1.0, 5.0, 4.8, -2.0])
    assert Sampler(GenerationConfig(temperature=0, repetition_penalty=1.0), [1], seed=0)(logits) == 1
    # 5.0 / 1.1 < 4.8: the token already in the context loses to the next best
    assert Sampler(GenerationConfig(temperature=0, repetition_penalty=1.1), [1], seed=0)(logits) == 2


def test_accepted_tokens_are_penalized_too() -> None:
    sampler = Sampler(GenerationConfig(temperature=0, repetition_penalty=2.0), [], seed=0)
    logits = np.array([3.0, 2.0, 0.0])
    assert sampler(logits) == 0
    sampler.accept(0)
    assert sampler(logits) == 1


def test_same_seed_same_tokens_and_other_seed_differs() -> None:
    logits = np.zeros(1000)
    params = GenerationConfig(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0)

    def draw(seed: int) -> list[int]:
        sampler = Sampler(params, [], seed=seed)
        return [sampler(logits) for _ in range(20)]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)
