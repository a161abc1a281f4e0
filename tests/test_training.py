"""Training runs: QLoRA/LoRA on CPU, detached processes, stop/resume/kill, queueing, DDP, FSDP."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from engine.chat.targets import open_backend, resolve_adapter
from engine.config import ModelConfig, RunConfig, apply_overrides, load_record
from engine.events import Log, Metrics
from engine.model_card import read_card_front_matter
from engine.paths import Home
from engine.runs.rundir import RunDir, RunError, create_run, open_run, remove_run
from engine.train import worker
from engine.train.checkpoints import STAGING_PREFIX, complete_checkpoints
from engine.versions import library_versions
from tests.cli import TANREN, tanren, tanren_env, wait_for
from tests.data_files import write_chat_data

@pytest.fixture
def chat_file(tmp_path: Path) -> Path:
    return write_chat_data(tmp_path / "chat.jsonl", examples=80)


def _config(base: Path, data: Path, *overrides: str) -> RunConfig:
    return apply_overrides(RunConfig(), [
        f"model.base={base}", f"data.path={data}", "data.max_length=128", "training.micro_batch_size=4",
        "training.gradient_accumulation=1", "training.learning_rate=1e-2", "training.warmup_ratio=0",
        *overrides,
    ])


def _losses(run: RunDir) -> list[tuple[int, float]]:
    return [(e.step, e.values["loss"]) for e in run.events.read() if isinstance(e, Metrics) and "loss" in e.values]


_wait_for = functools.partial(wait_for, timeout=900.0, interval=0.05)  # training on a busy CPU is slow


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_training_lowers_loss_and_writes_a_peft_adapter(method, home, tiny_model_dir, chat_file) -> None:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    run = create_run(_config(tiny_model_dir, chat_file, f"adapter.method={method}", "training.max_steps=12",
                             "training.save_steps=6", "name=t1"), home)
    assert worker.main([str(run.path)]) == 0
    assert run.status().state == "done"
    losses = [loss for _step, loss in _losses(run)]
    assert len(losses) == 12 and losses[-1] < losses[0] - 0.3

    adapter = run.adapter
    names = {p.name for p in adapter.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "training_config.yaml",
            "events.jsonl", "README.md"} <= names
    assert "training_args.bin" not in names  # no pickles in what we hand out
    card = (adapter / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and "library_name: peft" in card and f"- {method}" in card
    precision = run.config().training.precision  # "auto" was decided once and recorded for resume and eval
    assert precision in ("bf16", "fp32") and f"precision: {precision}" in card
    # what trained it is recorded: `tanren version`'s list and the kernels, in the events, config.yaml and card
    record = load_record(run.config_file)
    assert record.versions == library_versions()
    assert {"lora_sum_in_product", "cpu_labelled_lm_head", "atomic_checkpoints"} <= set(record.kernels)
    logged = [e.message for e in run.events.read() if isinstance(e, Log) and e.message.startswith("kernels: ")]
    assert logged == [f"kernels: {', '.join(record.kernels)}"]
    assert read_card_front_matter(adapter / "README.md")["kernels"] == list(record.kernels)
    assert f"| kernels | {', '.join(record.kernels)} |" in card
    assert load_record(adapter / "training_config.yaml") == record

    ids = [5, 17, 42, 99, 7]
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    plain = PeftModel.from_pretrained(base, adapter).eval()
    with torch.no_grad():
        tuned = plain(torch.tensor([ids])).logits[0, -1]
        with plain.disable_adapter():
            untouched = plain(torch.tensor([ids])).logits[0, -1]
    assert not torch.allclose(tuned, untouched, atol=1e-4)  # the adapter learned something
    ups = [w for name, w in load_file(adapter / "adapter_model.safetensors").items() if "lora_B" in name]
    assert ups and all(w.abs().sum() > 0 for w in ups)  # gradients reached every layer through the recomputation
    # the engine's own loading (the chat backend, adapter hot-swapped on the base) agrees with plain peft
    engine = open_backend(ModelConfig(base=str(tiny_model_dir)), home, adapters=[resolve_adapter("t1", home)])
    with engine._decoding(ids, adapter="t1") as decoder:
        assert torch.allclose(torch.from_numpy(decoder.logits), tuned, atol=1e-5)
    assert complete_checkpoints(run.checkpoints)[-1].name == "checkpoint-12"


def test_detached_run_survives_its_launcher(home, tiny_model_dir, chat_file) -> None:
    launcher = subprocess.Popen(
        [str(TANREN), "train", "--base", str(tiny_model_dir), "--data", str(chat_file), "--name", "orphan",
         "--max-steps", "15", "--set", "training.save_steps=15", "--set", "data.max_length=128", "--follow"],
        env=tanren_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    run = RunDir(home.run_dir("orphan"))
    _wait_for(lambda: run.status_file.exists() and run.status().state == "running", what="the run to start")
    launcher.kill()  # the terminal / SSH session / TUI that started it goes away
    launcher.wait()
    _wait_for(lambda: run.status().state in ("done", "failed"), what="the run to end")
    assert run.status().state == "done", run.status()
    assert _losses(run)[-1][0] == 15


def test_sigkill_then_resume_continues_with_the_same_result(home, tiny_model_dir, chat_file) -> None:
    settings = ("training.max_steps=40", "training.save_steps=10", "training.save_total_limit=2")
    reference = create_run(_config(tiny_model_dir, chat_file, *settings, "name=reference"), home)
    assert worker.main([str(reference.path)]) == 0

    result = tanren("train", "--config", _write_config(home, _config(tiny_model_dir, chat_file, *settings)),
                    "--name", "crashy", home=home)
    assert result.returncode == 0, result.stderr
    run = open_run("crashy", home)
    _wait_for(lambda: any(p.name == "checkpoint-10" for p in complete_checkpoints(run.checkpoints)),
              what="a first checkpoint")
    os.kill(run.pid(), signal.SIGKILL)  # the box crashes
    _wait_for(lambda: not run.is_alive(), what="the process to die")
    killed_at = _losses(run)[-1][0]
    assert killed_at < 40, "the run finished before it could be killed"
    status = run.status()
    assert status.state == "failed" and "tanren resume crashy" in status.hint

    result = tanren("resume", "crashy", "--follow", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert run.status().state == "done"
    steps = [step for step, _loss in _losses(run)]
    before_kill, after_kill = steps[:steps.index(killed_at) + 1], steps[steps.index(killed_at) + 1:]
    assert before_kill == list(range(1, killed_at + 1))
    # resumed from the last checkpoint at or before the kill, then every step up to the end
    assert 10 < after_kill[0] <= killed_at + 1 and after_kill == list(range(after_kill[0], 41))
    assert not list(run.checkpoints.glob(f"{STAGING_PREFIX}*"))
    for checkpoint in complete_checkpoints(run.checkpoints):
        assert (checkpoint / "adapter_model.safetensors").stat().st_size > 0
        assert (checkpoint / "optimizer.pt").is_file() and (checkpoint / "rng_state.pth").is_file()
    final, expected = _losses(run)[-1][1], _losses(reference)[-1][1]
    assert final == pytest.approx(expected, rel=0.02)


def _write_config(home: Home, config: RunConfig) -> str:
    from engine.config import save_yaml

    path = home.root / "configs" / "run.yaml"
    save_yaml(config, path)
    return str(path)


def test_stop_saves_a_checkpoint_and_resume_finishes(home, tiny_model_dir, chat_file) -> None:
    config = _write_config(home, _config(tiny_model_dir, chat_file, "training.max_steps=400",
                                         "training.save_steps=400"))
    assert tanren("train", "--config", config, "--name", "stoppable", home=home).returncode == 0
    run = open_run("stoppable", home)
    _wait_for(lambda: len(_losses(run)) >= 3, what="a few steps")
    result = tanren("stop", "stoppable", home=home)
    assert result.returncode == 0, result.stderr
    _wait_for(lambda: not run.is_alive(), what="the run to stop")
    status = run.status()
    assert status.state == "cancelled" and "tanren resume stoppable" in status.hint
    stopped_at = _losses(run)[-1][0]
    assert stopped_at < 400
    assert complete_checkpoints(run.checkpoints)[-1].name == f"checkpoint-{stopped_at}"
    assert not run.adapter.exists()  # a stopped run is not presented as finished

    listing = tanren("runs", home=home)
    assert "stoppable" in listing.stdout and "cancelled" in listing.stdout
    assert tanren("stop", "stoppable", home=home).returncode == 1  # not running any more


def test_second_run_is_queued_until_the_first_finishes(home, tiny_model_dir, chat_file) -> None:
    for name in ("first", "second"):
        config = _write_config(home, _config(tiny_model_dir, chat_file, "training.max_steps=15",
                                             "training.save_steps=15", f"name={name}"))
        assert tanren("train", "--config", config, home=home).returncode == 0
    first, second = open_run("first", home), open_run("second", home)
    _wait_for(lambda: "running" in {first.status().state, second.status().state}, what="one run to start")
    running, waiting = (first, second) if first.status().state == "running" else (second, first)
    _wait_for(lambda: "another run is training" in waiting.status().reason, what="queueing")
    assert waiting.status().state == "queued" and waiting.is_alive()
    _wait_for(lambda: first.status().state == "done" and second.status().state == "done", what="both runs")
    running_end = max(e.time for e in running.events.read())
    waiting_start = min(e.time for e in waiting.events.read() if isinstance(e, Metrics))
    assert waiting_start > running_end - 1.0  # it trained after, not alongside


def test_runs_rm_refuses_a_running_run_and_deletes_a_finished_one(home, tiny_model_dir, chat_file) -> None:
    config = _write_config(home, _config(tiny_model_dir, chat_file, "training.max_steps=400"))
    assert tanren("train", "--config", config, "--name", "busy", home=home).returncode == 0
    run = open_run("busy", home)
    _wait_for(run.is_alive, what="the run to start")
    result = tanren("runs", "rm", "busy", home=home)
    assert result.returncode == 1 and "still running" in result.stderr and run.path.exists()
    tanren("stop", "busy", home=home)
    _wait_for(lambda: not run.is_alive(), what="the run to stop")
    result = tanren("runs", "--json", home=home)
    entry = json.loads(result.stdout)[0]
    assert entry["name"] == "busy" and entry["disk_bytes"] > 0
    assert tanren("runs", "rm", "busy", home=home).returncode == 0
    assert not run.path.exists()


def test_ddp_with_two_cpu_processes(home, tiny_model_dir, chat_file) -> None:
    config = _write_config(home, _config(tiny_model_dir, chat_file, "training.max_steps=6",
                                         "training.save_steps=3"))
    result = tanren("train", "--config", config, "--name", "ddp", "--nproc", "2", "--follow", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "x 2 processes" in result.stdout
    run = open_run("ddp", home)
    assert [step for step, _ in _losses(run)] == list(range(1, 7))
    assert (run.adapter / "adapter_model.safetensors").is_file()


def _kill_every_process(run: RunDir) -> None:
    """The box crashes: torchrun's agent and both workers (rank 0 wrote its pid; the agent is its parent)."""
    rank0 = run.pid()
    agent = int(Path(f"/proc/{rank0}/stat").read_text().rsplit(")", 1)[1].split()[1])
    workers = Path(f"/proc/{agent}/task/{agent}/children").read_text().split()
    for pid in (agent, *map(int, workers)):
        os.kill(pid, signal.SIGKILL)


def _adapter_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    from safetensors.torch import load_file

    return {name: tuple(tensor.shape) for name, tensor in load_file(folder / "adapter_model.safetensors").items()}


def _adapter_config(folder: Path) -> dict:
    settings = json.loads((folder / "adapter_config.json").read_text())
    return {**settings, "target_modules": sorted(settings["target_modules"])}  # peft writes a set's order


def test_fsdp_over_two_cpu_processes_shards_learns_resumes_and_saves_one_adapter(home, tiny_model_dir,
                                                                                  chat_file) -> None:
    settings = ("training.max_steps=12", "training.save_steps=3", "training.distributed=fsdp")
    config = _write_config(home, _config(tiny_model_dir, chat_file, *settings))
    result = tanren("train", "--config", config, "--name", "sharded", "--nproc", "2", home=home)
    assert result.returncode == 0, result.stderr
    run = open_run("sharded", home)
    _wait_for(lambda: complete_checkpoints(run.checkpoints), what="a first checkpoint")
    _kill_every_process(run)
    _wait_for(lambda: not run.is_alive(), what="the processes to die")
    killed_at = _losses(run)[-1][0]
    assert killed_at < 12, "the run finished before it could be killed"
    assert run.status().state == "failed"

    # each process held its own part of every tensor of every transformer layer (DTensor shards)
    layouts = [json.loads((run.path / "sharding" / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert layouts[0]["units"] == layouts[1]["units"]
    layers = [unit for unit in layouts[0]["units"] if unit.rsplit(".", 2)[-2:-1] == ["layers"]]
    assert len(layers) == 2  # the tiny model's two decoder layers, each its own FSDP unit
    for layer in layers:
        tensors = [name for name in layouts[0]["tensors"] if name.startswith(layer + ".")]
        assert any("lora_A" in name for name in tensors) and any("base_layer" in name for name in tensors)
        for name in tensors:
            full = layouts[0]["tensors"][name]["full"]
            local = [layout["tensors"][name]["local"] for layout in layouts]
            assert all(0 < shape[0] < full[0] and shape[1:] == full[1:] for shape in local), (name, local, full)
            assert sum(shape[0] for shape in local) == full[0]

    result = tanren("resume", "sharded", "--nproc", "3", home=home)  # its checkpoints hold 2 slices each
    assert result.returncode == 1 and "resume with: tanren resume sharded --nproc 2" in result.stderr
    result = tanren("resume", "sharded", "--nproc", "2", "--follow", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert run.status().state == "done"
    steps, losses = zip(*_losses(run))
    cut = steps.index(killed_at) + 1
    assert list(steps[:cut]) == list(range(1, killed_at + 1))
    assert 3 < steps[cut] <= killed_at + 1 and list(steps[cut:]) == list(range(steps[cut], 13))
    assert max(losses[-3:]) < losses[0] - 0.3  # it learns
    assert not list(run.checkpoints.glob(f"{STAGING_PREFIX}*"))
    assert "cpu_fsdp2" in load_record(run.config_file).kernels

    # the result is one ordinary peft adapter, gathered: the tensors a single process saves
    single = create_run(_config(tiny_model_dir, chat_file, "training.max_steps=1", "name=single"), home)
    assert worker.main([str(single.path)]) == 0
    assert _adapter_shapes(run.adapter) == _adapter_shapes(single.adapter)
    adapter_config, single_config = (_adapter_config(r.adapter) for r in (run, single))
    assert adapter_config == single_config
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run.adapter)


def test_bad_input_is_refused_before_launch(home, tiny_model_dir, chat_file) -> None:
    result = tanren("train", "--base", str(tiny_model_dir), home=home)
    assert result.returncode == 1 and "no training data" in result.stderr and "Traceback" not in result.stderr
    result = tanren("train", "--data", str(chat_file), "--method", "prefix", home=home)
    assert result.returncode == 1 and "adapter.method" in result.stderr
    result = tanren("train", "--data", str(chat_file), "--name", "../escape", home=home)
    assert result.returncode == 1 and "invalid run name" in result.stderr
    assert not home.runs.exists() or not any(home.runs.iterdir())


def test_a_crash_ends_as_failed_with_advice(home, tiny_model_dir, chat_file, monkeypatch) -> None:
    import torch

    def out_of_memory(*_args, **_kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr("engine.train.recipe.run_training", out_of_memory)
    run = create_run(_config(tiny_model_dir, chat_file, "name=oom"), home)
    assert worker.main([str(run.path)]) == 1
    status = run.status()
    assert status.state == "failed" and status.reason == "out of memory"
    assert "gradient_accumulation" in status.hint and "qlora" in status.hint


def test_remove_run_keeps_running_runs(home, tiny_model_dir, chat_file) -> None:
    run = create_run(_config(tiny_model_dir, chat_file, "name=kept"), home)
    with pytest.raises(RunError):
        create_run(_config(tiny_model_dir, chat_file, "name=kept"), home)
    remove_run(run)
    assert not run.path.exists()


def test_full_fine_tuning_writes_a_whole_model(home, tiny_model_dir, chat_file) -> None:
    from transformers import AutoModelForCausalLM

    run = create_run(_config(tiny_model_dir, chat_file, "adapter.method=full", "training.max_steps=4",
                             "training.learning_rate=1e-3", "name=full"), home)
    assert worker.main([str(run.path)]) == 0
    model_dir = run.path / "model"
    assert (model_dir / "model.safetensors").is_file() and not run.adapter.exists()
    assert "library_name: transformers" in (model_dir / "README.md").read_text(encoding="utf-8")
    AutoModelForCausalLM.from_pretrained(model_dir)


def test_evaluation_early_stopping_and_continuing_an_adapter(home, tiny_model_dir, chat_file) -> None:
    first = create_run(_config(tiny_model_dir, chat_file, "training.max_steps=6", "training.save_steps=2",
                               "training.eval_steps=2", "training.early_stopping_patience=1",
                               "training.tensorboard=true", "name=evaluated"), home)
    assert worker.main([str(first.path)]) == 0
    eval_steps = [e.step for e in first.events.read() if isinstance(e, Metrics) and "eval_loss" in e.values]
    assert eval_steps and all(step % 2 == 0 for step in eval_steps)
    assert "eval_loss" in (first.adapter / "README.md").read_text(encoding="utf-8")
    assert any((first.path / "tensorboard").iterdir())

    second = create_run(_config(tiny_model_dir, chat_file, "training.max_steps=2",
                                f"adapter.init_adapter={first.adapter}", "name=continued"), home)
    assert worker.main([str(second.path)]) == 0
    first_losses, second_losses = _losses(first), _losses(second)
    assert second_losses[0][1] < first_losses[0][1]  # it starts where the first adapter left off


def test_save_steps_must_align_with_eval_steps(home, tiny_model_dir, chat_file) -> None:
    run = create_run(_config(tiny_model_dir, chat_file, "training.max_steps=4", "training.save_steps=3",
                             "training.eval_steps=2", "name=misaligned"), home)
    assert worker.main([str(run.path)]) == 1
    status = run.status()
    assert status.state == "failed" and "multiple of training.eval_steps" in status.reason


def test_follow_returns_only_once_the_run_let_go_so_export_and_resume_start_at_once(home, tiny_model_dir,
                                                                                    chat_file) -> None:
    """The worker records its end a moment before it exits; `tanren train --follow && tanren export RUN`
    and a resume right after a stopped run's follow must not find it still running."""
    from export.jobs import cancel_export, list_exports

    done = _write_config(home, _config(tiny_model_dir, chat_file, "training.max_steps=2"))
    assert tanren("train", "--config", done, "--name", "quick", "--follow", home=home).returncode == 0
    exported = tanren("export", "quick", "--quant", "f16", home=home)
    assert exported.returncode == 0, exported.stderr
    (export,) = list_exports("quick", home)
    cancel_export(export)

    long = _write_config(home, _config(tiny_model_dir, chat_file, "training.max_steps=400", "training.save_steps=400"))
    follower = subprocess.Popen([str(TANREN), "train", "--config", long, "--name", "stopped", "--follow"],
                                env=tanren_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: (home.run_dir("stopped") / "config.yaml").is_file(), what="the run's folder")
    run = open_run("stopped", home)
    _wait_for(lambda: len(_losses(run)) >= 2, what="a few steps")
    assert tanren("stop", "stopped", home=home).returncode == 0
    assert follower.wait(timeout=600) == 130
    resumed = tanren("resume", "stopped", home=home)
    assert resumed.returncode == 0, resumed.stderr
    _wait_for(lambda: len(_losses(run)) >= 3, what="a step after the resume")
    assert tanren("stop", "stopped", home=home).returncode == 0
    _wait_for(lambda: not run.is_alive() and not export.is_alive(), what="the run and the export to end")
