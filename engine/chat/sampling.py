"""Next-token choice from logits, the same arithmetic for every backend.

transformers' `generate` and llama.cpp's samplers differ in small ways that decide answers:
which tokens the repetition penalty sees (the whole context vs the last 64 sampled), the
order of the filters, and the random number generator. Sampling here, from each backend's
raw logits, makes "same prompt, same parameters, same seed" mean the same answer wherever
the logits agree, so compare mode shows the model's differences and nothing else.

The semantics are transformers': the repetition penalty applies to every token in the
context (prompt and answer so far), then temperature, top-k, top-p; temperature 0 is greedy.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

import numpy as np

from engine.config import GenerationConfig


def fresh_seed() -> int:
    """A random seed to use (and report) when the user gave none, so any answer can be replayed."""
    return secrets.randbits(31)


class Sampler:
    def __init__(self, params: GenerationConfig, context: Iterable[int], seed: int):
        self.params = params
        self._rng = np.random.default_rng(seed)
        self._seen = np.unique(np.fromiter(context, dtype=np.int64))

    def accept(self, token: int) -> None:
        """Record a token added to the context, so the repetition penalty covers it."""
        if self.params.repetition_penalty != 1.0:
            self._seen = np.union1d(self._seen, [token])

    def __call__(self, logits: np.ndarray) -> int:
        if self.params.temperature == 0:
            return int(np.argmax(self._penalized(logits)))
        ids, probs = self.candidates(logits)
        return int(ids[self._rng.choice(len(ids), p=probs)])

    def candidates(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ids that top-k and top-p leave, likeliest first, with their sampling probabilities."""
        scores = self._penalized(logits)
        k = self.params.top_k
        if 0 < k < scores.size:  # float32 like the logits: a partition of 49k float64 costs 4x more
            ids = np.argpartition(scores, scores.size - k)[scores.size - k:]
        else:
            ids = np.arange(scores.size)
        ids = ids[np.argsort(-scores[ids], kind="stable")]
        # Temperature scales every logit alike, so it changes no ranking: apply it to the few left.
        scaled = scores[ids].astype(np.float64) / self.params.temperature
        probs = np.exp(scaled - scaled[0])
        probs /= probs.sum()
        # Keep a token while the mass of the likelier tokens is below top_p (transformers' rule).
        mass_before = np.cumsum(probs) - probs
        keep = mass_before < self.params.top_p
        keep[0] = True
        ids, probs = ids[keep], probs[keep]
        return ids, probs / probs.sum()

    def _penalized(self, logits: np.ndarray) -> np.ndarray:
        scores = np.asarray(logits, dtype=np.float32)
        penalty = self.params.repetition_penalty
        if penalty == 1.0 or self._seen.size == 0:
            return scores
        scores = scores.copy()
        seen = scores[self._seen]
        scores[self._seen] = np.where(seen > 0, seen / penalty, seen * penalty)
        return scores
