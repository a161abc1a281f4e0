"""The kernels layer: each kernel applies only within its conditions and says why not, `off` trains
as the libraries ship (with the same losses), and the names applied are recorded."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.config import RunConfig, apply_overrides, load_record, load_yaml, save_yaml
from engine.config.record import LaunchRecord
from engine.errors import ConfigError
from engine.events import EventLog, Log, Metrics
from engine.train.kernels import layer
from engine.train.kernels.catalog import (DEVICES, KERNELS, METHODS, NAMES, OBJECTIVES, PRECISIONS, STRATEGIES,
                                          SWITCHABLE)
from engine.train.kernels.layer import KernelResult, Setting
from tests.data_files import write_chat_data

INSIDE = Setting("cpu", "bf16", "lora", "sft", "fsdp")  # the setting where every kernel applies
AUTO = RunConfig()


class Trainer:
    """What the layer hands each patch: the trainer itself, or its model."""

    model = object()


@pytest.fixture
def patched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """Every kernel's patch replaced by a spy that records what it was given and reports it applied."""
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(layer, "_patch", lambda kernel: lambda target: calls.append((kernel.name, target)) or True)
    return calls


def _result(results: list[KernelResult], name: str) -> KernelResult:
    return next(r for r in results if r.name == name)


def _apply_both_stages(trainer, config, **kwargs) -> list[KernelResult]:
    """The kernels applied before the trainer is built (to accelerate), then those applied to it."""
    return layer.apply(None, config, **kwargs) + layer.apply(trainer, config, **kwargs)


def test_inside_its_conditions_every_kernel_applies_to_its_target(patched) -> None:
    from accelerate.state import AcceleratorState

    trainer = Trainer()
    results = _apply_both_stages(trainer, AUTO, setting=INSIDE)
    assert sorted(r.name for r in results if r.applied) == sorted(NAMES)
    targets = dict(patched)
    assert targets["atomic_checkpoints"] is trainer and targets["cpu_fsdp2"] is AcceleratorState
    assert all(targets[k.name] is trainer.model for k in KERNELS if k.target == "model")
    assert [r.name for r in layer.apply(None, AUTO, setting=INSIDE)] == ["cpu_fsdp2"]  # before the trainer


OUTSIDE = [
    pytest.param(kernel.name, what, value, id=f"{kernel.name}-{value}")
    for kernel in KERNELS
    for what, allowed, every in (("device", kernel.devices, DEVICES), ("precision", kernel.precisions, PRECISIONS),
                                 ("method", kernel.methods, METHODS), ("objective", kernel.objectives, OBJECTIVES),
                                 ("strategy", kernel.strategies, STRATEGIES))
    for value in every if value not in allowed
]


@pytest.mark.parametrize(("name", "what", "value"), OUTSIDE)
def test_each_kernel_reports_not_applied_outside_its_conditions(patched, name: str, what: str, value: str) -> None:
    results = _apply_both_stages(Trainer(), AUTO, setting=dataclasses.replace(INSIDE, **{what: value}))
    result = _result(results, name)
    assert not result.applied and result.reason.startswith(f"{what} {value} ")
    assert name not in dict(patched)  # its patch never ran


def test_every_restricted_condition_is_tested() -> None:
    # the conditions that the parametrization above covers: a kernel restricting nothing would need none
    restricted = {p.values[0] for p in OUTSIDE}
    assert restricted == {k.name for k in KERNELS
                          if (k.devices, k.precisions, k.methods, k.objectives, k.strategies)
                          != (DEVICES, PRECISIONS, METHODS, OBJECTIVES, STRATEGIES)}
    assert len(restricted) >= 5


VERSIONED = [pytest.param(k.name, lib, id=f"{k.name}-{lib}") for k in KERNELS for lib in k.verified]


@pytest.mark.parametrize(("name", "library"), VERSIONED)
@pytest.mark.parametrize("found", ["99.0", "0.0.1", None])
def test_a_library_release_outside_the_verified_range_turns_the_kernel_off(patched, name, library, found) -> None:
    versions = lambda distribution: found if distribution == library else layer.installed_version(distribution)  # noqa: E731
    results = _apply_both_stages(Trainer(), AUTO, setting=INSIDE, version_of=versions)
    result = _result(results, name)
    assert not result.applied and library in result.reason
    assert (found or "not installed") in result.reason
    others = [k.name for k in KERNELS if library not in k.verified]
    assert all(_result(results, other).applied for other in others)  # only the kernels that rely on it


def test_the_suites_pinned_releases_are_inside_every_verified_range() -> None:
    # the ranges start at the releases the suite passes with; a pin outside one would silently turn it off
    lines = (Path(__file__).resolve().parent.parent / "scripts" / "constraints.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if "==" in line and not line.startswith("#"))
    pinned = lambda distribution: pins.get(distribution) or layer.installed_version(distribution)  # noqa: E731 - torch
    assert all(layer.unverified(kernel, pinned) is None for kernel in KERNELS)


def test_a_kernel_that_finds_nothing_to_change_reports_not_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layer, "_patch", lambda kernel: lambda target: kernel.name != "lora_sum_in_product")
    result = _result(layer.apply(Trainer(), AUTO, setting=INSIDE), "lora_sum_in_product")
    assert not result.applied and result.reason == "nothing in this model for it to change"


def _lines(results: list[layer.KernelResult], choice: tuple[str, ...]) -> list[str]:
    """describe()'s log lines in English (they are phrases, shown in the reader's language)."""
    return [str(line) for line in layer.describe(results, choice)]


def test_off_keeps_only_the_safeguards_and_names_pick_kernels(patched) -> None:
    off = apply_overrides(RunConfig(), ["training.kernels=off"])
    results = layer.apply(Trainer(), off, setting=INSIDE)
    assert layer.applied_names(results) == ("atomic_checkpoints",)
    assert layer.applied_names(layer.apply(None, off, setting=INSIDE)) == ("cpu_fsdp2",)  # FSDP on CPU needs it
    single = layer.apply(None, off, setting=dataclasses.replace(INSIDE, strategy="single"))
    assert layer.applied_names(single) == () and _lines(single, ("auto",)) == ["kernels: none"]
    assert _lines(results, off.training.kernels) == ["kernels: atomic_checkpoints (training.kernels: off)"]
    picked = apply_overrides(RunConfig(), ["training.kernels=cpu_varlen_attention,lora_sum_in_product"])
    results = layer.apply(Trainer(), picked, setting=dataclasses.replace(INSIDE, device="cuda"))
    assert layer.applied_names(results) == ("lora_sum_in_product", "atomic_checkpoints")
    # a kernel asked for by name that cannot apply says why; one left out by the choice is not listed
    assert _lines(results, picked.training.kernels) == [
        "kernels: lora_sum_in_product, atomic_checkpoints "
        "(training.kernels: cpu_varlen_attention, lora_sum_in_product)",
        "kernel cpu_varlen_attention off: device cuda (it applies to cpu)",
    ]


@pytest.mark.parametrize(("text", "expected"), [
    ("kernels: off", ("off",)), ("kernels: false", ("off",)), ("kernels: auto", ("auto",)),
    ("kernels: [fused_lora_dropout]", ("fused_lora_dropout",)), ("kernels: cpu_labelled_lm_head", ("cpu_labelled_lm_head",)),
])
def test_training_kernels_in_a_config_file(tmp_path: Path, text: str, expected: tuple[str, ...]) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(f"training:\n  {text}\n", encoding="utf-8")
    assert load_yaml(path).training.kernels == expected


@pytest.mark.parametrize("value", ["lora_sum", "auto,lora_sum_in_product", "''"])
def test_an_unknown_kernel_name_is_refused_with_the_names_there_are(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        apply_overrides(RunConfig(), [f"training.kernels={value}"])
    assert caught.value.where == "training.kernels" and "fused_lora_dropout" in caught.value.hint
    assert set(SWITCHABLE) < set(NAMES)


def test_the_launch_record_is_kept_in_config_yaml_and_ignored_when_read_as_a_config(tmp_path: Path) -> None:
    config = apply_overrides(RunConfig(), ["training.kernels=off"])
    record = LaunchRecord({"torch": "2.13.0", "peft": "0.21.2"}, ("atomic_checkpoints",))
    path = tmp_path / "config.yaml"
    save_yaml(config, path, record)
    assert load_yaml(path) == config  # `tanren train --config runs/x/config.yaml` takes it as it is
    assert load_record(path) == record
    save_yaml(config, path)
    assert load_record(path) is None


def _train(tmp_path: Path, model: Path, data: Path, home, precision: str, kernels: str) -> tuple[list[float], tuple]:
    from engine.train.recipe import run_training

    config = apply_overrides(RunConfig(), [
        f"model.base={model}", f"data.path={data}", "data.split=1,0,0", "data.max_length=128",
        "training.micro_batch_size=4", "training.gradient_accumulation=1", "training.learning_rate=1e-2",
        "training.warmup_ratio=0", "training.max_steps=6", "training.save_steps=1000", "adapter.dropout=0",
        f"training.precision={precision}", f"training.kernels={kernels}",
    ])
    out = tmp_path / f"{precision}-{kernels}"
    events = EventLog(out / "events.jsonl")
    outcome = run_training(config, out, home, resume=False, should_stop=lambda: False, events=events)
    losses = [e.values["loss"] for e in events.read() if isinstance(e, Metrics) and "loss" in e.values]
    assert any(isinstance(e, Log) and e.message.startswith("kernels: ") for e in events.read())
    return losses, outcome.kernels


# Tolerances: the kernels change only the order and the rounding of the same sums (one addmm
# instead of a product, a scaling and an addition; softmax statistics per labelled position;
# attention per example instead of under a mask). In fp32 each such rounding is within fp32's
# epsilon (1.2e-7); six steps of Adam at lr 1e-2 amplify them, measured up to 1e-7 relative, so
# 1e-5 leaves room for another CPU's kernels while catching any real change (a dropped token, a
# wrong scale: 1e-2 and more). In bf16 the products themselves round to 8 bits: the loss can
# move by less than one bf16 unit, 2^-8 = 3.9e-3 relative (measured up to 8e-4).
@pytest.mark.parametrize(("precision", "rtol"), [("fp32", 1e-5), ("bf16", 2 ** -8)])
def test_kernels_off_trains_with_the_same_losses_as_auto(tmp_path, tiny_model_dir, home, precision, rtol) -> None:
    data = write_chat_data(tmp_path / "chat.jsonl", examples=40)
    off, off_kernels = _train(tmp_path, tiny_model_dir, data, home, precision, "off")
    auto, auto_kernels = _train(tmp_path, tiny_model_dir, data, home, precision, "auto")
    assert off_kernels == ("atomic_checkpoints",)
    assert {"lora_sum_in_product", "cpu_labelled_lm_head", "cpu_varlen_attention"} <= set(auto_kernels)
    assert len(off) == len(auto) == 6
    assert auto == pytest.approx(off, rel=rtol)
