"""The CPU LM head for the loss: trl's outputs, from the labelled positions only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.train.lm_head import label_log_probs, score_labelled_positions_on_cpu

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_label_log_probs_match_log_softmax_in_every_chunk() -> None:
    torch.manual_seed(0)
    rows, hidden_size, vocab = 37, 16, 50
    hidden = torch.randn(rows, hidden_size, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(vocab, hidden_size, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(vocab, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, vocab, (rows,))
    chunk = vocab * 5  # eight chunks of five rows, the last one shorter

    log_probs, entropy, is_top1 = label_log_probs(hidden, weight, bias, labels, chunk)
    expected = torch.log_softmax(hidden @ weight.T + bias, -1)
    assert torch.allclose(log_probs, expected.gather(-1, labels[:, None]).squeeze(-1))
    assert torch.allclose(entropy, -(expected.exp() * expected).sum(-1))
    assert torch.equal(is_top1, expected.argmax(-1) == labels)
    assert torch.autograd.gradcheck(lambda h, w, b: label_log_probs(h, w, b, labels, chunk)[0], (hidden, weight, bias))


def _fused_lora_model(tiny_model_dir: Path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))  # as trl's SFTTrainer does
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    for name, param in model.named_parameters():  # non-zero B, so every adapter gets a gradient
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.1)
    return model


def _outputs_and_grads(model, ids, labels):
    model.zero_grad()
    out = model(input_ids=ids, labels=labels, fused_lm_head=True)
    out.loss.backward()
    grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    return out, grads


def test_trainer_model_gives_trls_outputs_and_gradients(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.train import lm_head

    scored_rows = []
    monkeypatch.setattr(lm_head, "label_log_probs", lambda hidden, *rest: scored_rows.append(len(hidden))
                        or label_log_probs(hidden, *rest))
    model = _fused_lora_model(tiny_model_dir)
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    labels = ids.clone()
    labels[0, :5] = labels[1, :8] = -100  # prompt positions carry no label
    trl_out, trl_grads = _outputs_and_grads(model, ids, labels)

    assert score_labelled_positions_on_cpu(model, chunk_logits=3 * model.config.vocab_size)
    out, grads = _outputs_and_grads(model, ids, labels)
    assert scored_rows == [(labels[:, 1:] != -100).sum().item()]  # only the positions with a label
    assert torch.equal(out.label_mask, trl_out.label_mask)
    for field in ("loss", "log_probs", "entropy"):
        assert torch.allclose(getattr(out, field), getattr(trl_out, field), atol=1e-5), field
    assert torch.equal(out.is_top1, trl_out.is_top1)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, trl_grads, strict=True))
    plain = model(input_ids=ids, labels=labels)  # without fused_lm_head: the model's own forward
    assert torch.allclose(plain.loss, out.loss, atol=1e-5) and plain.logits.shape[-1] == model.config.vocab_size


def test_scaled_or_capped_heads_keep_trls_path(tiny_model_dir: Path) -> None:
    model = _fused_lora_model(tiny_model_dir)
    model.config.final_logit_softcapping = 30.0
    forward = model.get_base_model().forward
    assert not score_labelled_positions_on_cpu(model)
    assert model.get_base_model().forward is forward
