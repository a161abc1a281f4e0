"""The rows of one decoding batch on a transformers model: left-padded prompts, a mask that hides
the padding, positions that follow each row's own tokens, and one KV cache for all of them.

Rows can leave the batch (their cache rows are dropped) and, between two steps, new rows can
join it: the newcomers' prompts are run on their own, then their cache and the batch's are
left-padded to one length and stacked (continuous batching). Padding sits where the mask hides
it, so every row still sees exactly its own tokens. Joining needs transformers' plain dynamic
cache layers, whose key and value tensors ([batch, heads, length, head size]) it stacks; a
model with other layers (sliding windows, ...) keeps its batch as it started.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional


def _left_pad(tensor: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    missing = length - tensor.shape[dim]
    if missing == 0:
        return tensor
    pads = [0, 0] * (tensor.dim() - 1 - dim % tensor.dim()) + [missing, 0]
    return functional.pad(tensor, pads)


class PaddedBatch:
    def __init__(self, model, pad_id: int):
        self.model, self.pad_id = model, pad_id
        self.cache = None
        self.mask: torch.Tensor | None = None

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, cache):
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1]:]
        with torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                             use_cache=True, logits_to_keep=1)
        return out.past_key_values, out.logits[:, -1].float().numpy()

    def start(self, prompts: list[list[int]]) -> np.ndarray:
        """Run the prompts (a new batch, or newcomers joining this one); their next-token logits."""
        width = max(map(len, prompts))
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        cache, logits = self._forward(ids, mask, None)
        if self.mask is None or self.mask.shape[0] == 0:
            self.cache, self.mask = cache, mask
        else:
            self._stack(cache, mask)
        return logits

    @property
    def joinable(self) -> bool:
        from transformers.cache_utils import DynamicLayer

        layers = getattr(self.cache, "layers", None)
        return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)

    def _stack(self, cache, mask: torch.Tensor) -> None:
        length = max(self.mask.shape[1], mask.shape[1])
        for mine, theirs in zip(self.cache.layers, cache.layers):
            mine.keys = torch.cat([_left_pad(mine.keys, length, -2), _left_pad(theirs.keys, length, -2)])
            mine.values = torch.cat([_left_pad(mine.values, length, -2), _left_pad(theirs.values, length, -2)])
        self.mask = torch.cat([_left_pad(self.mask, length, -1), _left_pad(mask, length, -1)])

    def advance(self, tokens: Sequence[int]) -> np.ndarray:
        """Feed one token per row; the next-token logits of every row."""
        self.mask = torch.cat([self.mask, torch.ones(len(tokens), 1, dtype=self.mask.dtype)], dim=1)
        self.cache, logits = self._forward(torch.tensor([[token] for token in tokens]), self.mask, self.cache)
        return logits

    def keep(self, rows: Sequence[int]) -> None:
        """Only `rows` stay (in that order); columns that are padding for every one left go too."""
        if len(rows) == self.mask.shape[0]:
            return
        index = torch.tensor(list(rows), dtype=torch.long)
        self.mask = self.mask[index]
        used = self.mask.any(0).nonzero()
        first = int(used[0]) if len(used) else self.mask.shape[1]
        self.mask = self.mask[:, first:]
        for layer in self.cache.layers:
            layer.batch_select_indices(index)
            if first and layer.keys is not None and layer.keys.numel():
                layer.keys, layer.values = layer.keys[..., first:, :], layer.values[..., first:, :]
