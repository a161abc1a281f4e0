"""`tanren eval` on the tiny model: before/after on a run, results file and model card, JSON,
models and GGUF files, bad input, the progress bar and Ctrl-C."""

from __future__ import annotations

import io
import json
import signal
import subprocess
from pathlib import Path

import pytest

from engine.config import RunConfig, apply_overrides
from engine.data import SAMPLE_HELDOUT, SAMPLE_PREFERENCE, load_splits
from engine.i18n import PSEUDO, load_catalog
from engine.paths import Home
from engine.phrases import phrase
from engine.runs import create_run, open_run
from engine.model_card import read_card_front_matter, render_model_card
from evals.cli import ProgressBar
from evals.targets import examples_sha256
from tests.cli import TANREN, tanren_env
from tests.data_files import QA, chat, write_jsonl
from tests.tiny_model import make_adapter
from tui.entry import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run_home(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Home:
    """A home with a finished LoRA run `tuned` of the tiny model (a random adapter), whose card
    holds training metrics."""
    home = Home(tmp_path_factory.mktemp("eval-home"))
    data = write_jsonl(home.root / "chat.jsonl", [chat(f"{q} ({i})", a) for i in range(30) for q, a in [QA[i % len(QA)]]])
    config = apply_overrides(RunConfig(), [f"model.base={tiny_model_dir}", f"data.path={data}", "data.max_length=96",
                                           "generation.max_new_tokens=6", "name=tuned"])
    run = create_run(config, home)
    make_adapter(tiny_model_dir, run.adapter, seed=1)
    (run.adapter / "README.md").write_text(render_model_card("tuned", config, {"final_loss": 1.25}), encoding="utf-8")
    return home


@pytest.fixture
def in_home(monkeypatch: pytest.MonkeyPatch):
    def use(home: Home) -> Home:
        monkeypatch.setenv("TANREN_HOME", str(home.root))
        return home
    return use


def test_run_is_measured_before_and_after_and_kept_with_the_run(run_home: Home, in_home, capsys) -> None:
    in_home(run_home)
    assert main(["eval", "tuned"]) == 0
    out = capsys.readouterr().out
    run_dir = run_home.run_dir("tuned")
    results = json.loads((run_dir / "eval_results.json").read_text(encoding="utf-8"))

    config = open_run("tuned", run_home).config()
    test_split = load_splits(config.data).test
    assert results["dataset"] == {"path": config.data.path, "split": "test", "format": "messages",
                                  "sha256": examples_sha256(test_split), "examples": len(test_split)}
    assert results["settings"]["max_length"] == 96 and results["settings"]["max_new_tokens"] == 6
    assert results["settings"]["assistant_only"] is True and results["run"] == "tuned"
    base, tuned = results["results"]
    assert (base["role"], base["adapter"], tuned["role"], tuned["label"]) == ("base", None, "tuned", "tuned")
    assert tuned["adapter"] == str(run_dir / "adapter")
    for row in (base, tuned):
        assert set(row["metrics"]) == {"perplexity", "nll", "tokens", "rouge1", "rouge2", "rougeL"}
        assert row["metrics"]["tokens"] > 0 and 0 <= row["metrics"]["rouge1"] <= 1
    assert tuned["metrics"]["tokens"] == base["metrics"]["tokens"]
    assert tuned["metrics"]["perplexity"] != pytest.approx(base["metrics"]["perplexity"], rel=1e-4)

    # the table: one row per model, the change against the base
    change = (tuned["metrics"]["perplexity"] / base["metrics"]["perplexity"] - 1) * 100
    assert f"{len(test_split)} examples of {config.data.path} (test split)" in out
    assert f"{base['metrics']['perplexity']:.3f}" in out and f"({change:+.1f}%)" in out
    assert "tuned (fine-tuned)" in out and "eval_results.json" in out

    card = run_dir / "adapter" / "README.md"
    front = read_card_front_matter(card)
    assert front["metrics"] == {"final_loss": 1.25}  # the training results stay
    assert front["eval_results"]["results"]["tuned"]["perplexity"] == pytest.approx(tuned["metrics"]["perplexity"])
    text = card.read_text(encoding="utf-8")
    assert "## Evaluation" in text and "| model | perplexity | ROUGE-1 | ROUGE-2 | ROUGE-L |" in text
    assert f"| base | {base['metrics']['perplexity']:.4f} |" in text and "| tuned (fine-tuned) |" in text


def test_json_output_limit_and_one_metric(run_home: Home, in_home, capsys) -> None:
    in_home(run_home)
    assert main(["eval", "tuned", "--metrics", "perplexity", "--limit", "3", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((run_home.run_dir("tuned") / "eval_results.json").read_text(encoding="utf-8"))
    assert printed["dataset"]["examples"] == 3 and printed["settings"]["limit"] == 3
    assert [set(row["metrics"]) for row in printed["results"]] == [{"perplexity", "nll", "tokens"}] * 2


def test_preference_pairs_are_measured_before_and_after_and_shown_in_the_card(run_home: Home, in_home,
                                                                            capsys) -> None:
    in_home(run_home)
    args = ["eval", "tuned", "--data", str(SAMPLE_PREFERENCE), "--metrics", "perplexity,preference", "--limit", "12"]
    assert main(args) == 0
    out = capsys.readouterr().out
    run_dir = run_home.run_dir("tuned")
    results = json.loads((run_dir / "eval_results.json").read_text(encoding="utf-8"))
    assert results["dataset"]["pairs"] == results["dataset"]["examples"] == 12
    base, tuned = results["results"]
    before, after = base["metrics"], tuned["metrics"]
    for metrics in (before, after):
        assert set(metrics) == {"perplexity", "nll", "tokens", "preference_accuracy", "preference_margin", "pairs"}
        assert 0 <= metrics["preference_accuracy"] <= 1
    # the run's data.max_length (96 tokens) is the window: the longer pairs are left out, and said so
    assert 0 < before["pairs"] == after["pairs"] < 12
    assert f"preference on the {before['pairs']} pairs that fit the 96-token window (--max-length)" in out
    assert after["preference_margin"] != pytest.approx(before["preference_margin"], rel=1e-4)

    assert f"12 preference pairs of {SAMPLE_PREFERENCE}" in out and "perplexity on the chosen answers" in out
    header = out.splitlines()[2]
    assert header.split() == ["model", "backend", "perplexity", "pref.", "accuracy", "pref.", "margin"]
    margin_change = after["preference_margin"] - before["preference_margin"]
    accuracy_change = (after["preference_accuracy"] - before["preference_accuracy"]) * 100
    assert f"{before['preference_margin']:.3f}" in out and f"{after['preference_margin']:.3f} ({margin_change:+.3f})" in out
    assert f"{after['preference_accuracy']:.4f} ({accuracy_change:+.1f} pt)" in out

    text = (run_dir / "adapter" / "README.md").read_text(encoding="utf-8")
    assert "| model | perplexity | pref. accuracy | pref. margin |" in text
    assert f"on 12 preference pairs of `{SAMPLE_PREFERENCE}`" in text and "preference accuracy (the share" in text
    summary = read_card_front_matter(run_dir / "adapter" / "README.md")["eval_results"]
    assert summary["pairs"] == 12
    assert summary["results"]["tuned"]["preference_margin"] == pytest.approx(after["preference_margin"], abs=1e-6)


def test_models_gguf_files_and_adapters_on_a_data_file(run_home: Home, tiny_model_dir: Path, gguf_model_dir: Path,
                                                       tmp_path: Path, in_home, capsys) -> None:
    from export.gguf import write_gguf

    home = in_home(Home(tmp_path / "home"))
    gguf = write_gguf(gguf_model_dir, tmp_path / "tiny-f32.gguf", dtype="f32")
    args = ["--data", str(SAMPLE_HELDOUT), "--metrics", "perplexity", "--limit", "10", "--json"]
    assert main(["eval", str(gguf_model_dir), *args]) == 0
    [hf] = json.loads(capsys.readouterr().out)["results"]
    assert main(["eval", str(gguf), *args]) == 0
    [llama] = json.loads(capsys.readouterr().out)["results"]
    assert (hf["role"], hf["backend"], llama["backend"], llama["label"]) == ("model", "transformers", "llama.cpp",
                                                                           gguf.name)
    assert llama["metrics"]["tokens"] == hf["metrics"]["tokens"]
    assert llama["metrics"]["perplexity"] == pytest.approx(hf["metrics"]["perplexity"], rel=1e-3)

    adapter = run_home.run_dir("tuned") / "adapter"
    assert main(["eval", str(tiny_model_dir), *args]) == 0
    [plain] = json.loads(capsys.readouterr().out)["results"]
    assert main(["eval", str(tiny_model_dir), "--adapter", str(adapter), *args]) == 0
    base, tuned = json.loads(capsys.readouterr().out)["results"]
    assert (base["role"], tuned["role"], tuned["label"]) == ("base", "tuned", "tuned")
    assert base["metrics"]["perplexity"] == pytest.approx(plain["metrics"]["perplexity"], rel=1e-9)
    assert not home.runs.exists()  # nothing is written for a model


def test_full_fine_tuning_run_compares_the_base_with_the_run_s_model(tiny_model_dir: Path, tmp_path: Path, in_home,
                                                                     capsys) -> None:
    from tests.tiny_model import build_tiny_model

    home = in_home(Home(tmp_path / "home"))
    config = apply_overrides(RunConfig(), [f"model.base={tiny_model_dir}", f"data.path={SAMPLE_HELDOUT}",
                                           "adapter.method=full", "name=whole"])
    run = create_run(config, home)
    build_tiny_model(run.path / "model", seed=5)  # stands in for the fully trained weights
    (run.path / "model" / "README.md").write_text(render_model_card("whole", config, {}), encoding="utf-8")
    assert main(["eval", "whole", "--metrics", "perplexity", "--json"]) == 0
    base, tuned = json.loads(capsys.readouterr().out)["results"]
    assert (base["model"], tuned["model"], tuned["adapter"]) == (str(tiny_model_dir), str(run.path / "model"), None)
    assert tuned["metrics"]["tokens"] == base["metrics"]["tokens"]
    assert tuned["metrics"]["perplexity"] != pytest.approx(base["metrics"]["perplexity"], rel=1e-4)
    assert "| whole (fine-tuned) |" in (run.path / "model" / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(("args", "message"), [
    (["eval", "no-such-run-or-model"], "unknown target 'no-such-run-or-model'"),
    (["eval", "tuned", "--metrics", "perplexity,bleu"], "unknown metric bleu"),
    (["eval", "tuned", "--limit", "0"], "--limit must be at least 1"),
    (["eval", "tuned", "--adapter", "tuned"], "--adapter goes with a model"),
    (["eval", "unfinished"], "run unfinished has no trained model to evaluate yet"),
    (["eval", "{model}"], "no data to evaluate on"),
    (["eval", "tuned", "--data", "{empty}"], "holds no records"),
    (["eval", "tuned", "--data", "{text}"], "this example is raw text"),
    (["eval", "tuned", "--metrics", "preference"], "the preference metric needs preference pairs, but "),
])
def test_bad_input_is_one_clear_error(run_home: Home, tiny_model_dir: Path, tmp_path: Path, in_home, capsys,
                                      args: list[str], message: str) -> None:
    in_home(run_home)
    if not run_home.run_dir("unfinished").exists():
        create_run(apply_overrides(RunConfig(), [f"model.base={tiny_model_dir}", "name=unfinished"]), run_home)
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    (tmp_path / "text.jsonl").write_text(json.dumps({"text": "plain text"}) + "\n", encoding="utf-8")
    files = {"model": str(tiny_model_dir), "empty": str(tmp_path / "empty.jsonl"), "text": str(tmp_path / "text.jsonl")}
    assert main([arg.format(**files) for arg in args]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and message in captured.err and "Traceback" not in captured.err
    assert captured.out == ""
    if "text" in args[-1]:
        assert f"{tmp_path / 'text.jsonl'}:1" in captured.err  # the example at fault


def test_ctrl_c_stops_with_one_line_and_writes_nothing(run_home: Home, tmp_path: Path) -> None:
    data = tmp_path / "many.jsonl"
    data.write_text(SAMPLE_HELDOUT.read_text(encoding="utf-8") * 20, encoding="utf-8")
    # As a terminal delivers it: a suite started as a background job (`make test &` in a script) runs
    # with SIGINT ignored, which a child would inherit, and Python then never turns it into Ctrl-C.
    process = subprocess.Popen([str(TANREN), "eval", "tuned", "--data", str(data), "--max-new-tokens", "64"],
                               env=tanren_env(run_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    results = run_home.run_dir("tuned") / "eval_results.json"
    results.unlink(missing_ok=True)
    for line in process.stderr:
        if line.startswith("loading"):
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "evaluation cancelled; nothing was written"
    assert "Traceback" not in err and out == ""
    assert not results.exists()


def test_progress_bar_redraws_one_line_on_a_terminal_and_logs_steps_otherwise() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    perplexity, answers = (phrase(what, target="base") for what in ("{target}: perplexity", "{target}: answers"))
    terminal = Terminal()
    bar = ProgressBar(terminal, load_catalog("en").gettext)
    bar(perplexity, 3, 4)
    bar(perplexity, 4, 4)
    bar.status("loading a model")
    assert terminal.getvalue() == ("\rbase: perplexity [" + "#" * 18 + "." * 6 + "] 3/4\x1b[K"
                                   "\rbase: perplexity [" + "#" * 24 + "] 4/4\x1b[K\nloading a model\n")
    log = io.StringIO()
    bar = ProgressBar(log, load_catalog(PSEUDO).gettext)
    bar(answers, 1, 2)
    bar(answers, 2, 2)
    assert log.getvalue() == "⟦⟦base: answers⟧: 2/2 done⟧\n"  # the step and the line, each through the catalog

