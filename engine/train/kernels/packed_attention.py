"""Attention over a padding-free row on CPU: each example alone, causal, in fp32.

A padding-free micro-batch is one row of several examples, which SDPA attends to under a
block-causal mask. The CPU's flash kernel then scores every query against every key of the
row and masks most of them away; under `is_causal` alone it skips the keys ahead of each query
instead. trl's collator already passes the examples' bounds (`cu_seq_lens_q`/`_k`, the inputs
of the varlen kernels), so on CPU each example's slice is attended alone with `is_causal`: for
four equal examples an eighth of the masked kernel's products. The kernel also runs faster in
fp32 than in bf16, so the slices are attended in fp32 and the result is cast back. Forward
and backward of four examples of 120-256 tokens (9 heads, 3 KV heads), best of 7: 75 ms masked
in bf16 (transformers' path), 39 ms per example in bf16, 27 ms per example in fp32. The result
is the masked one up to rounding, which fp32 makes finer. Every other call (no bounds, a KV
or paged cache, several rows, a non-causal layer or call, a sliding window shorter than an
example, attention sinks, soft-capping, position biases, a GPU) goes to transformers' SDPA
with its mask, which is still built.
"""

from __future__ import annotations

import torch
from torch.nn import functional

NAME = "tanren_cpu_varlen_sdpa"


def attend_per_example_on_cpu(model) -> bool:
    """Let `model` (a trainer's model) attend per example in padding-free rows on CPU.

    Returns False, changing nothing, where the model does not use transformers' SDPA, or where
    its mask may say more than the examples' bounds: models with sub-models (vision or audio
    towers would take the new name too), bidirectional text models and chunked attention.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    config = model.config  # a PeftModel hands `config` and `set_attn_implementation` to the model it wraps
    if (config._attn_implementation != "sdpa" or config.sub_configs or getattr(config, "is_causal", True) is False
            or getattr(config, "attention_chunk_size", None)):
        return False
    AttentionInterface.register(NAME, _attention)
    AttentionMaskInterface.register(NAME, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])  # the fallback needs sdpa's mask
    model.set_attn_implementation(NAME)
    return True


def _attention(module, query, key, value, attention_mask, *, dropout=0.0, scaling=None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    starts = _example_starts(module, query, key, kwargs)
    if starts is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      dropout=dropout, scaling=scaling, **kwargs)
    with torch.autocast("cpu", enabled=False):  # autocast would take the products back to bf16
        q, k, v = (t.float() for t in (query, key, value))
        outputs = [functional.scaled_dot_product_attention(
            q[:, :, a:b], k[:, :, a:b], v[:, :, a:b], dropout_p=dropout, scale=scaling, is_causal=True,
            enable_gqa=q.shape[1] != k.shape[1]).transpose(1, 2) for a, b in zip(starts, starts[1:])]
        return torch.cat(outputs, dim=1).to(query.dtype), None


def _example_starts(module, query, key, kwargs) -> list[int] | None:
    """The examples' start offsets and the row's end, when attending to each alone gives the masked result."""
    bounds, bounds_k = kwargs.get("cu_seq_lens_q"), kwargs.get("cu_seq_lens_k")
    causal = kwargs.get("is_causal")  # as in transformers' SDPA, an argument overrides the layer's own flag
    if (bounds is None or bounds_k is None or query.device.type != "cpu" or query.shape[0] != 1
            or not (getattr(module, "is_causal", True) if causal is None else causal)
            or any(kwargs.get(name) is not None for name in ("position_bias", "softcap", "s_aux", "cache"))):
        return None
    starts = bounds.tolist()
    if starts != bounds_k.tolist() or starts[0] != 0 or starts[-1] != query.shape[2] or key.shape[2] != query.shape[2]:
        return None
    window = kwargs.get("sliding_window") or getattr(module, "sliding_window", None)
    if window is not None and max(b - a for a, b in zip(starts, starts[1:])) > window:
        return None  # a window shorter than an example hides part of it, which only the mask says
    return starts
