"""The CPU LM head for the loss: trl's outputs, from the labelled positions only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.train.kernels import lm_head
from engine.train.kernels.lm_head import label_log_probs, score_labelled_positions_on_cpu
from tests.spies import record_calls

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _head(dtype: torch.dtype, rows: int = 37, hidden_size: int = 16, vocab: int = 50):
    torch.manual_seed(0)
    hidden = torch.randn(rows, hidden_size, dtype=dtype, requires_grad=True)
    weight, bias = torch.randn(vocab, hidden_size, dtype=dtype), torch.randn(vocab, dtype=dtype)
    return hidden, weight, bias, torch.randint(0, vocab, (rows,))


def test_label_log_probs_match_log_softmax_in_every_chunk() -> None:
    hidden, weight, bias, labels = _head(torch.float64)
    chunk = weight.shape[0] * 5  # eight chunks of five rows, the last one shorter

    log_probs, entropy, is_top1, mean_logits = label_log_probs(hidden, weight, bias, labels, chunk)
    expected = torch.log_softmax(hidden @ weight.T + bias, -1)
    assert torch.allclose(mean_logits, (hidden @ weight.T + bias).mean(-1))
    assert torch.allclose(log_probs, expected.gather(-1, labels[:, None]).squeeze(-1))
    assert torch.allclose(entropy, -(expected.exp() * expected).sum(-1))
    assert torch.equal(is_top1, expected.argmax(-1) == labels)
    assert torch.autograd.gradcheck(lambda h: label_log_probs(h, weight, bias, labels, chunk)[0], (hidden,))


def test_under_bf16_autocast_the_projection_is_bf16_and_the_softmax_fp32() -> None:
    hidden, weight, bias, labels = _head(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        log_probs = label_log_probs(hidden, weight, bias, labels, weight.shape[0] * 5)[0]
    log_probs.sum().backward()
    reference = hidden.detach().float().requires_grad_()
    expected = torch.log_softmax(reference @ weight.float().T + bias.float(), -1).gather(-1, labels[:, None])
    expected.sum().backward()
    assert log_probs.dtype == torch.float32 and hidden.grad.dtype == torch.bfloat16
    assert torch.allclose(log_probs, expected.squeeze(-1), atol=0.1)  # bf16 logits: about 3 significant digits
    assert torch.allclose(hidden.grad.float(), reference.grad, atol=0.05)


def test_a_trainable_head_is_refused() -> None:
    hidden, weight, bias, labels = _head(torch.float32)
    with pytest.raises(ValueError, match="frozen"):
        label_log_probs(hidden, weight.requires_grad_(), bias, labels)


def _trl_trainer_model(tiny_model_dir: Path, tmp_path: Path):
    """The LoRA model as trl's SFTTrainer leaves it: its own fused LM head patched in."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=SFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to=[], bf16=False),
        train_dataset=Dataset.from_dict({"text": ["a b c"]}),
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"),
    )
    for name, param in trainer.model.named_parameters():  # non-zero B, so every adapter gets a gradient
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.1)
    return trainer.model


def _outputs_and_grads(model, ids, labels):
    model.zero_grad()
    out = model(input_ids=ids, labels=labels, fused_lm_head=True)
    out.loss.backward()
    grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    return out, grads


def _spy_on_scored_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    return record_calls(monkeypatch, lm_head, "label_log_probs", lambda hidden, *_: len(hidden))


def test_trainer_model_gives_trls_outputs_and_gradients(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scored = _spy_on_scored_rows(monkeypatch)
    model = _trl_trainer_model(tiny_model_dir, tmp_path)
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    labels = ids.clone()
    labels[0, :5] = labels[1, :8] = -100  # prompt positions carry no label
    trl_out, trl_grads = _outputs_and_grads(model, ids, labels)

    assert score_labelled_positions_on_cpu(model, chunk_logits=3 * model.config.vocab_size)
    out, grads = _outputs_and_grads(model, ids, labels)
    assert scored == [(labels[:, 1:] != -100).sum().item()]  # only the positions with a label
    assert torch.equal(out.label_mask, trl_out.label_mask)
    for field in ("loss", "log_probs", "entropy"):
        assert torch.allclose(getattr(out, field), getattr(trl_out, field), atol=1e-5), field
    assert torch.equal(out.is_top1, trl_out.is_top1)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, trl_grads, strict=True))
    plain = model(input_ids=ids, labels=labels)  # without fused_lm_head: the model's own forward
    assert torch.allclose(plain.loss, out.loss, atol=1e-5) and plain.logits.shape[-1] == model.config.vocab_size

    nothing = torch.full_like(labels, -100)  # a batch without labels: a zero loss that backward accepts
    empty, _ = _outputs_and_grads(model, ids, nothing)
    assert empty.loss.item() == 0 and empty.loss.requires_grad


def test_a_trainable_head_keeps_trls_path(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scored = _spy_on_scored_rows(monkeypatch)
    model = _trl_trainer_model(tiny_model_dir, tmp_path)
    model.get_output_embeddings().weight.requires_grad_(True)
    assert score_labelled_positions_on_cpu(model)
    ids = torch.randint(0, model.config.vocab_size, (1, 8))
    out, _ = _outputs_and_grads(model, ids, ids)
    assert scored == [] and model.get_output_embeddings().weight.grad is not None and out.loss.item() > 0


def test_scaled_or_capped_heads_keep_trls_path(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = _trl_trainer_model(tiny_model_dir, tmp_path)
    model.config.final_logit_softcapping = 30.0
    forward = model.get_base_model().forward
    assert not score_labelled_positions_on_cpu(model)
    assert model.get_base_model().forward is forward
