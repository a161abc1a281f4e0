"""The headless parts the workbench stands on: run progress, the loss plot, GPU readings,
chat targets and the shared model pool, and refusing bad runs before launch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.chat.pool import TargetPool, TargetSpec, chat_targets, spec_for
from engine.config import RunConfig, apply_overrides
from engine.errors import ConfigError, DataError, ModelNotFoundError
from engine.events import Log, Metrics, Progress, Status
from engine.i18n import load_catalog
from engine.models.registry import DEFAULT_MODEL
from engine.paths import Home
from engine.jobs import Follower
from engine.presentation.event_lines import EventFormatter
from engine.runs.progress import RunProgress
from engine.runs.rundir import RunError, create_run
from engine.runs.training import start_training
from engine.system import parse_gpu_line, sample_system
from tests.data_files import write_chat_data, write_pair_data
from tests.tui_helpers import finished_run
from tui.widgets.loss_plot import plot_cells

ENGLISH = load_catalog("en").gettext


def test_run_progress_folds_events_and_a_resume_replaces_the_steps_it_repeats() -> None:
    progress = RunProgress(formatter=EventFormatter(ENGLISH))
    lines = progress.add([Status("running", "started"), Progress(0, 6)] +
                         [Metrics(s, {"loss": 3.0 - s * 0.1, "learning_rate": 1e-4}) for s in (1, 2, 3)] +
                         [Progress(3, 6, eta_s=30.0), Status("cancelled", "stopped at step 3")])
    assert (progress.done, progress.total, progress.state, progress.eta_s) == (3, 6, "cancelled", None)
    assert lines[0] == "[running] started" and lines[-1] == "[cancelled] stopped at step 3"
    # Resumed from the checkpoint at step 2: step 3 is trained again and logged anew.
    progress.add([Status("running", "resumed"), Metrics(3, {"loss": 1.5, "eval_loss": 1.7}), Progress(3, 6, eta_s=9.0)])
    assert progress.losses == {1: 2.9, 2: 2.8, 3: 1.5} and progress.eval_losses == {3: 1.7}
    assert progress.latest["learning_rate"] == 1e-4 and progress.eta_s == 9.0
    assert progress.log[-1].startswith("step 3/6 | loss 1.5000 | eval_loss 1.7000")


def test_a_followed_run_folds_only_what_was_appended(home: Home) -> None:
    run = finished_run(home, "followed", steps=4)
    follower, progress = Follower(run), RunProgress(formatter=EventFormatter(ENGLISH))
    first = follower.poll()
    progress.add(first.events)
    assert len(first.events) == len(run.events.read()) and progress.done == 4 and first.status.state == "done"
    assert follower.poll().events == []
    run.events.append(Log("one more line"))
    assert progress.add(follower.poll().events) == ["one more line"] and progress.events == len(first.events) + 1


def test_the_loss_plot_draws_both_series_from_top_to_bottom() -> None:
    losses = {step: 3.0 - step * 0.05 for step in range(1, 41)}
    evals = {10: 2.9, 20: 2.5, 30: 2.0, 40: 1.9}
    cells, top, bottom = plot_cells([losses, evals], width=20, height=5)
    assert top == 2.95 and bottom == 1.0
    assert cells[0][0][0] != 0 and cells[-1][-1] != (0, -1)  # starts top left, ends bottom right
    drawn = {index for row in cells for bits, index in row if bits}
    assert drawn == {0, 1}
    # Every column has a dot of the training loss: lines join the points, no gaps.
    assert all(any(cells[row][column][0] for row in range(5)) for column in range(20))
    assert plot_cells([{}, {}], 20, 5) is None
    assert plot_cells([{5: 1.0}], 20, 5)[1:] == (1.5, 0.5)  # one value: a band around it


def test_gpu_lines_from_nvidia_smi() -> None:
    gpu = parse_gpu_line("NVIDIA H100 80GB HBM3, 87, 40960, 81559")
    assert (gpu.name, gpu.util_percent, gpu.memory_used, gpu.memory_total) == (
        "NVIDIA H100 80GB HBM3", 87.0, 40960 * 2**20, 81559 * 2**20)
    assert parse_gpu_line("Tesla, T4, [N/A], 0, 15360").name == "Tesla, T4"  # commas in a name, no utilization
    sample = sample_system(Home(Path("/nonexistent/tanren-home")))  # the nearest existing folder's disk
    assert sample.disk_total > 0 and sample.ram_total > 0 and sample.cpu_count >= 1
    assert sample.gpus or sample.gpu_note


def test_chat_targets_list_bases_builtin_ggufs_and_finished_adapters(home: Home, tmp_path: Path,
                                                                     tiny_model_dir: Path) -> None:
    adapter_run = finished_run(home, "tuned", base=str(tiny_model_dir))
    adapter_run.adapter.mkdir()
    (adapter_run.adapter / "adapter_config.json").write_text("{}")
    finished_run(home, "untrained")  # no adapter: nothing to chat with
    specs = chat_targets(home)
    assert TargetSpec("base", DEFAULT_MODEL) in specs
    assert TargetSpec("gguf", DEFAULT_MODEL, backend="llama.cpp") in specs
    assert TargetSpec("adapter", str(tiny_model_dir), adapter="tuned") in specs
    assert not any(spec.adapter == "untrained" for spec in specs)
    assert TargetSpec("adapter", str(tiny_model_dir), adapter="tuned").label == "tuned on tiny-llama"
    assert spec_for("models/x.GGUF").kind == "gguf" and spec_for(str(tmp_path)).kind == "model"


def test_a_base_and_its_adapter_share_one_loaded_model(home: Home, tiny_model_dir: Path, tmp_path: Path) -> None:
    from tests.tiny_model import make_adapter

    run = finished_run(home, "tuned", base=str(tiny_model_dir))
    make_adapter(tiny_model_dir, run.adapter, seed=1)
    statuses: list[str] = []
    pool = TargetPool(home, on_status=lambda said: statuses.append(str(said)))  # the pool says Phrases
    base = pool.open(TargetSpec("model", str(tiny_model_dir)))
    tuned = pool.open(TargetSpec("adapter", str(tiny_model_dir), adapter="tuned"))
    try:
        assert tuned.backend is base.backend and tuned.adapter == "tuned" and base.adapter is None
        assert sum("with transformers" in s for s in statuses) == 1 and "loading adapter tuned" in statuses
        assert pool.open(TargetSpec("adapter", str(tiny_model_dir), adapter="tuned")).backend is base.backend
    finally:
        pool.close()


def test_bad_runs_are_refused_before_anything_is_created(home: Home, tmp_path: Path) -> None:
    data = write_chat_data(tmp_path / "chat.jsonl")
    with pytest.raises(DataError, match="does not exist"):
        start_training(apply_overrides(RunConfig(), [f"data.path={tmp_path / 'nope.jsonl'}"]), home)
    with pytest.raises(ModelNotFoundError):
        start_training(apply_overrides(RunConfig(), [f"data.path={data}", "model.base=nobody/no-such-model"]), home)
    pairs = write_pair_data(tmp_path / "pairs.jsonl")
    with pytest.raises(ConfigError, match=r"^SFT needs SFT records, but .*pairs.jsonl holds preference pairs"):
        start_training(apply_overrides(RunConfig(), [f"data.path={pairs}"]), home)
    assert not home.runs.exists()
    create_run(apply_overrides(RunConfig(), ["name=taken", f"data.path={data}"]), home)
    with pytest.raises(RunError, match="already exists"):
        start_training(apply_overrides(RunConfig(), ["name=taken", f"data.path={data}"]), home)
    assert json.loads((home.run_dir("taken") / "status.json").read_text())["state"] == "queued"
