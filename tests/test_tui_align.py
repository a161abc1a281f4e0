"""Preference runs from the workbench. "Align this run": a finished SFT run opens the new-run form
for a DPO run that continues its adapter on its base, and the run it starts shows its preference
metrics live. Data collected in Chat, or a file from the Data screen, comes with its objective."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import Input, OptionList, Select, Static

from engine.config import RunConfig, apply_overrides
from engine.data import load_records
from engine.data.bundled import SAMPLE_PREFERENCE
from engine.paths import Home
from engine.runs.rundir import create_run, open_run
from engine.train import worker
from tests.data_files import write_chat_data
from tests.tui_helpers import fill, fixed_system, wait_until
from tui.app import TanrenApp
from tui.screens.new_run import NewRunScreen
from tui.screens.picker import Picker
from tui.screens.train import TrainScreen


def _sft_run(home: Home, base: Path, data: Path):
    config = apply_overrides(RunConfig(), [f"model.base={base}", f"data.path={data}", "data.max_length=128",
                                           "training.max_steps=2", "training.micro_batch_size=2",
                                           "training.gradient_accumulation=1", "name=sft"])
    run = create_run(config, home)
    assert worker.main([str(run.path)]) == 0
    return run


def _pairs(path: Path) -> Path:
    pairs = load_records(SAMPLE_PREFERENCE)[1][:12]  # the first ones are short
    path.write_text("".join(json.dumps(p.to_trl(), ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
    return path


async def test_align_a_finished_sft_run(home: Home, tiny_model_dir: Path, tmp_path: Path) -> None:
    sft = _sft_run(home, tiny_model_dir, write_chat_data(tmp_path / "chat.jsonl", examples=8))
    pairs = _pairs(tmp_path / "pairs.jsonl")
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, TrainScreen) and screen.view.run == sft
        assert screen.check_action("align", ()) is True
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen), "the new-run form")
        form = app.screen
        assert form.query_one("#field-training-objective", Select).value == "dpo"
        assert form.query_one("#field-adapter-init-adapter", Input).value == str(sft.adapter)
        assert form.query_one("#field-model-base", Input).value == str(tiny_model_dir)
        assert form.query_one("#field-data-path", Input).value == ""  # the pairs are the user's to give
        for field, text in (("field-name", "aligned"), ("field-data-path", str(pairs)),
                            ("field-training-max-steps", "3"), ("field-training-save-steps", "3")):
            await fill(pilot, field, text)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, TrainScreen), "the run to start")
        run = open_run("aligned", home)
        await wait_until(pilot, lambda: run.status().state == "done", "the DPO run to finish", timeout=600)
        config = run.config()
        assert config.training.objective == "dpo" and config.adapter.init_adapter == str(sft.adapter)
        metrics = app.screen.view.query_one("#run-metrics", Static)
        await wait_until(pilot, lambda: "margin" in str(metrics.render()), "the preference metrics")
        assert "acc " in str(metrics.render())
        assert app.screen.check_action("align", ()) is None  # a DPO run is already aligned


async def test_the_form_offers_collected_data_with_its_objective(home: Home, tmp_path: Path) -> None:
    home.dataset_dir("mine").mkdir(parents=True)
    _pairs(home.dataset_dir("mine") / "pairs.jsonl")
    ratings = home.dataset_dir("mine") / "kto.jsonl"
    ratings.write_text(json.dumps({"prompt": "Hi?", "completion": "Hello.", "label": True}) + "\n", encoding="utf-8")
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3", "n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen), "the new-run form")
        form = app.screen
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, Picker), "the collected data")
        labels = [str(option.prompt) for option in app.screen.query_one(OptionList).options]
        assert labels == ["mine · pairs.jsonl (12 preference pairs) → DPO", "mine · kto.jsonl (1 KTO ratings) → KTO"]
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: app.screen is form, "the form again")
        assert form.query_one("#field-data-path", Input).value == str(ratings)
        assert form.query_one("#field-training-objective", Select).value == "kto"
        await pilot.press("escape")

        await app.new_run(data=str(home.dataset_dir("mine") / "pairs.jsonl"))  # the Data screen's "train on this"
        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen)
                         and app.screen.query("#field-training-objective"), "the form for the file")
        assert app.screen.query_one("#field-training-objective", Select).value == "dpo"
