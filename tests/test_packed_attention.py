"""Attention per example in a padding-free row on CPU: the masked result, less work, and SDPA for everything else."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn import functional

from engine.train.kernels import packed_attention
from engine.train.kernels.packed_attention import attend_per_example_on_cpu
from tests.spies import record_calls
from tests.tiny_model import build_tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LENGTHS = (5, 9, 3, 7)


def _row():
    """A padding-free row as trl's collator makes it: ids, positions restarting per example, the varlen bounds."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 200, (1, sum(LENGTHS)), generator=generator)
    positions = torch.cat([torch.arange(n) for n in LENGTHS])[None]
    bounds = torch.tensor([0, *torch.tensor(LENGTHS).cumsum(0).tolist()], dtype=torch.int32)
    return dict(input_ids=ids, position_ids=positions, cu_seq_lens_q=bounds, cu_seq_lens_k=bounds,
                max_length_q=max(LENGTHS), max_length_k=max(LENGTHS), use_cache=False)


def _model(folder: Path, per_example: bool):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder).train()
    assert model.config._attn_implementation == "sdpa"
    if per_example:
        assert attend_per_example_on_cpu(model)
    return model


def _logits_and_grads(model, inputs: dict, autocast: bool = False):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = model(**inputs).logits
    logits.float().square().mean().backward()
    return logits.detach().float(), {name: p.grad for name, p in model.named_parameters()}


def _each_alone(model, inputs: dict):
    with torch.no_grad():
        pieces = torch.split(inputs["input_ids"], list(LENGTHS), dim=1)
        return torch.cat([model(input_ids=piece, use_cache=False).logits for piece in pieces], dim=1)


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_each_example_alone_gives_the_masked_logits_and_gradients(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, autocast: bool
) -> None:
    inputs = _row()
    masked, masked_grads = _logits_and_grads(_model(tiny_model_dir, False), inputs, autocast)
    calls = record_calls(monkeypatch, functional, "scaled_dot_product_attention",
                         lambda q, *_: (q.shape[2], q.dtype, torch.is_autocast_enabled("cpu")))
    model = _model(tiny_model_dir, True)
    split, split_grads = _logits_and_grads(model, inputs, autocast)
    layers = model.config.num_hidden_layers
    assert sorted(calls) == sorted([(n, torch.float32, False) for n in LENGTHS] * layers)  # one call per example, in fp32
    tolerance = 3e-2 if autocast else 1e-5
    assert torch.allclose(split, masked, atol=tolerance)
    assert torch.allclose(split, _each_alone(model, inputs), atol=tolerance)
    for name, grad in masked_grads.items():
        assert torch.allclose(split_grads[name], grad, atol=tolerance, rtol=tolerance), name


def test_without_the_bounds_sdpa_attends_with_its_mask(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers.integrations import sdpa_attention

    model = _model(tiny_model_dir, True)
    inputs = {k: v for k, v in _row().items() if not k.startswith(("cu_seq", "max_length"))}
    calls = record_calls(monkeypatch, sdpa_attention, "sdpa_attention_forward", lambda module, q, *_: q.shape[2])
    with torch.no_grad():
        logits = model(**inputs).logits
    assert calls == [sum(LENGTHS)] * model.config.num_hidden_layers
    assert torch.allclose(logits, _each_alone(model, inputs), atol=1e-5)  # the mask still keeps examples apart


def test_generation_with_a_kv_cache_is_unchanged(tiny_model_dir: Path) -> None:
    prompt = torch.tensor([[5, 17, 42, 99, 7, 3]])
    plain, patched = _model(tiny_model_dir, False).eval(), _model(tiny_model_dir, True).eval()
    settings = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(patched.generate(prompt, **settings), plain.generate(prompt, **settings))


@pytest.mark.parametrize(("window", "split"), [(4, False), (16, True)], ids=["shorter-keeps-the-mask", "longer-splits"])
def test_a_sliding_window_splits_the_row_only_when_every_example_fits_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: int, split: bool
) -> None:
    folder = build_tiny_model(tmp_path / "mistral", model_type="mistral", sliding_window=window)
    inputs = _row()
    masked, _ = _logits_and_grads(_model(folder, False), inputs)
    calls = record_calls(monkeypatch, functional, "scaled_dot_product_attention", lambda q, *_: q.shape[2])
    model = _model(folder, True)
    attended, _ = _logits_and_grads(model, inputs)
    # each example alone, or the whole row under the windowed mask
    assert sorted(calls) == sorted((LENGTHS if split else (sum(LENGTHS),)) * model.config.num_hidden_layers)
    assert torch.allclose(attended, masked, atol=1e-5)


def test_a_model_not_on_sdpa_is_left_alone(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="eager")
    assert not attend_per_example_on_cpu(model) and model.config._attn_implementation == "eager"


@pytest.mark.parametrize(("setting", "value"), [("sub_configs", {"vision_config": None}), ("is_causal", False),
                                                ("attention_chunk_size", 8)])
def test_a_model_whose_mask_may_say_more_than_the_bounds_is_left_alone(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, setting: str, value
) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    if setting == "sub_configs":  # a property of the config class: a multimodal model's towers
        monkeypatch.setattr(type(model.config), setting, property(lambda _: value))
    else:
        setattr(model.config, setting, value)
    assert not attend_per_example_on_cpu(model) and model.config._attn_implementation == "sdpa"


CHANGES = ["none", "position_bias", "softcap", "s_aux", "cache", "two rows", "a kv cache", "bounds differ",
           "layer not causal", "call not causal", "window as long as the longest", "window one shorter"]


@pytest.mark.parametrize("change", CHANGES)
def test_only_a_plain_causal_row_with_its_bounds_is_split(change: str) -> None:
    module = torch.nn.Module()
    rows = 2 if change == "two rows" else 1
    query = torch.zeros(rows, 4, sum(LENGTHS), 8)
    key = torch.zeros(rows, 2, sum(LENGTHS) + (1 if change == "a kv cache" else 0), 8)
    inputs = _row()
    kwargs = {"cu_seq_lens_q": inputs["cu_seq_lens_q"], "cu_seq_lens_k": inputs["cu_seq_lens_k"].clone()}
    if change == "bounds differ":
        kwargs["cu_seq_lens_k"][1] += 1
    if change in ("position_bias", "softcap", "s_aux", "cache"):
        kwargs[change] = torch.zeros(1) if change != "softcap" else 30.0
    module.is_causal = change != "layer not causal"
    if change == "call not causal":
        kwargs["is_causal"] = False
    if change.startswith("window"):
        module.sliding_window = max(LENGTHS) - (change == "window one shorter")
    starts = packed_attention._example_starts(module, query, key, kwargs)
    split = change in ("none", "window as long as the longest")
    assert starts == ([0, 5, 14, 17, 24] if split else None)
