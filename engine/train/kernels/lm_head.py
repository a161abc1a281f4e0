"""The training loss's LM head on CPU: only positions with a label are scored.

trl replaces the model's forward by a "fused LM head" that computes each label's log-probability
in vocabulary chunks, so that the [tokens, vocab] logits never exist at once. On CUDA it scores
only the positions that carry a label; elsewhere it scores every position (prompt tokens too)
and runs its backward products in fp32. On a CPU with bf16 that made the LM head a fifth of a
LoRA step. Here, on CPU, the positions with a label are projected in the autocast dtype, in
chunks of tokens whose logits backward recomputes (so memory stays bounded like trl's), and the
softmax is taken in fp32. The outputs are trl's, so its loss, entropy, mean-logit (DPO, KTO)
and token-accuracy metrics are unchanged; those only feed metrics, so they carry no gradient
here. A
trainable head (full fine-tuning) keeps trl's path, which accumulates its gradient in fp32.
"""

from __future__ import annotations

import functools
import types

import torch
from torch.nn import functional

CHUNK_LOGITS = 1 << 24  # logits per chunk of tokens; at 10 bytes each (bf16, fp32, exp) 160 MiB
_SCALED_HEAD = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")


def score_labelled_positions_on_cpu(model, chunk_logits: int = CHUNK_LOGITS) -> bool:
    """Let the trl-fused forward of `model` (a trainer's model) score only labelled positions on CPU.

    Returns False where trl's path is kept: heads that scale or cap their logits, and MoE models
    whose loss adds a router term. Off CPU, with a trainable head or with labels already shifted,
    the forward hands the call to trl's.
    """
    from peft import PeftModel

    model = model.get_base_model() if isinstance(model, PeftModel) else model  # trl patched the causal LM
    config = model.config.get_text_config()
    if any(getattr(config, name, None) is not None for name in _SCALED_HEAD) or getattr(config, "output_router_logits", False):
        return False
    trl_forward = model.forward

    @functools.wraps(type(model).forward)
    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs):
        if (not fused_lm_head or shift_labels is not None or kwargs.get("output_router_logits")
                or not _frozen_cpu_head(self.get_output_embeddings())):
            return trl_forward(*args, fused_lm_head=fused_lm_head, labels=labels, shift_labels=shift_labels,
                               num_items_in_batch=num_items_in_batch, **kwargs)
        return _labelled_forward(self, args, kwargs, labels, num_items_in_batch, chunk_logits)

    model.forward = types.MethodType(forward, model)
    return True


def _frozen_cpu_head(head) -> bool:
    from torch.distributed.tensor import DTensor

    return (head.weight.device.type == "cpu" and not isinstance(head.weight, DTensor)  # FSDP's shards stay with trl
            and not any(p.requires_grad for p in head.parameters()))


def _labelled_forward(model, args, kwargs, labels, num_items_in_batch, chunk_logits: int):
    from trl.trainer.utils import FusedCausalLMOutput

    hidden = model.base_model(*args, **{**kwargs, "use_cache": False}).last_hidden_state[:, :-1]
    labels = labels[:, 1:]
    mask = labels != -100
    head = model.get_output_embeddings()
    scored = label_log_probs(hidden[mask], head.weight, head.bias, labels[mask], chunk_logits)
    log_probs, entropy, is_top1, mean_logits = (mask.new_zeros(mask.shape, dtype=x.dtype).masked_scatter(mask, x)
                                                for x in scored)
    loss = -log_probs.sum() / (mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch)
    return FusedCausalLMOutput(loss=loss, log_probs=log_probs, entropy=entropy, is_top1=is_top1,
                               mean_logits=mean_logits, label_mask=mask)


def label_log_probs(hidden, weight, bias, labels, chunk_logits: int = CHUNK_LOGITS):
    """Per row of `hidden` [N, H]: log p(label), the distribution's entropy, whether the label is its
    argmax, and the mean logit, under a frozen head (`weight`, `bias`); only `hidden` gets a gradient."""
    rows = max(1, chunk_logits // weight.shape[0])
    parts = [_LabelLogProbs.apply(h, weight, bias, t) for h, t in zip(hidden.split(rows), labels.split(rows))]
    return tuple(torch.cat(column) for column in zip(*parts))


class _LabelLogProbs(torch.autograd.Function):
    """log p(label) for a chunk of rows; backward recomputes the chunk's logits instead of keeping them."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx, hidden, weight, bias, labels):
        if any(ctx.needs_input_grad[1:3]):
            raise ValueError("label_log_probs takes the head as frozen; a trainable head keeps trl's path")
        projected = functional.linear(hidden, weight, bias)  # in autocast's dtype, under autocast
        ctx.projection_dtype = projected.dtype
        logits = _at_least_fp32(projected)
        top = logits.max(-1)
        exp = (logits - top.values[:, None]).exp_()
        total = exp.sum(-1)
        log_z = top.values + total.log()
        label_logits = logits.gather(-1, labels[:, None]).squeeze(-1)
        mean_logits = logits.mean(-1)
        entropy = log_z - exp.mul_(logits).sum(-1) / total
        ctx.save_for_backward(hidden, weight, bias, labels, log_z)
        ctx.mark_non_differentiable(entropy, mean_logits)
        ctx.set_materialize_grads(False)
        return label_logits - log_z, entropy, top.indices == labels, mean_logits  # max's index is the first maximum's

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad, *_):
        if grad is None:  # only the metrics were used
            return None, None, None, None
        hidden, weight, bias, labels, log_z = ctx.saved_tensors
        # d log p(label) / d logits = onehot(label) - softmax
        grad_logits = _at_least_fp32(functional.linear(hidden, weight, bias)).sub_(log_z[:, None]).exp_().neg_()
        grad_logits.scatter_add_(-1, labels[:, None], grad_logits.new_ones(labels.shape[0], 1))
        grad_logits = grad_logits.mul_(grad[:, None]).to(ctx.projection_dtype)
        return (grad_logits @ weight.to(ctx.projection_dtype)).to(hidden.dtype), None, None, None


def _at_least_fp32(tensor):
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))
