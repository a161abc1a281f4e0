"""`tanren chat` on the tiny model: one-shot answers, adapters, compare, sessions, interactive."""

from __future__ import annotations

import io
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.chat.sessions import load_session
from engine.data import check_file
from engine.paths import Home
from tests import export_runs
from tests.judged import EDITED, SETTINGS, assistant, check_good_then_edit, user
from tests.judged import records as collected
from tests.tiny_model import make_adapter
from tui.entry import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run_with_adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A home with a finished run `tuned` whose adapter/ folder fits the tiny model."""
    root = tmp_path_factory.mktemp("cli-home")
    make_adapter(tiny_model_dir, Home(root).run_dir("tuned") / "adapter", seed=1)
    return root, tiny_model_dir


def test_prompt_prints_only_the_answer_and_exits_0(home: Home, tiny_model_dir: Path) -> None:
    exe = Path(sys.executable).with_name("tanren")
    result = subprocess.run(
        [str(exe), "chat", str(tiny_model_dir), "--prompt", "What is the capital of France?",
         "--max-new-tokens", "8", "--seed", "1"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TANREN_HOME": str(home.root)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and "tokens/s" not in result.stdout
    assert "first token" in result.stderr and "tokens/s" in result.stderr and "seed 1" in result.stderr


def test_adapter_by_run_name_and_compare_with_base(run_with_adapter, monkeypatch, capsys) -> None:
    root, model = run_with_adapter
    monkeypatch.setenv("TANREN_HOME", str(root))
    args = ["chat", str(model), "--prompt", "hello", "--temperature", "0", "--max-new-tokens", "8"]
    assert main([*args, "--adapter", "tuned", "--vs", "base"]) == 0
    out = capsys.readouterr().out
    assert f"== {model.name} [transformers] + tuned ==" in out and f"== {model.name} [transformers] ==" in out
    assert "-- the answers part after" in out
    assert main([*args, "--vs", "base"]) == 0
    assert "-- identical answers" in capsys.readouterr().out


def test_a_run_name_chats_with_its_base_and_adapter(home: Home, tiny_model_dir: Path, capsys) -> None:
    export_runs.run_with_adapter(home, tiny_model_dir, "tuned")
    args = ["--prompt", "hello", "--temperature", "0", "--max-new-tokens", "8"]
    assert main(["chat", "tuned", *args, "--vs", "base"]) == 0
    out = capsys.readouterr().out
    name = tiny_model_dir.name
    assert f"== {name} [transformers] + tuned ==" in out and f"== {name} [transformers] ==" in out
    assert main(["chat", "not-a-run", *args]) == 1
    assert "unknown model 'not-a-run'" in capsys.readouterr().err
    assert main(["chat", "no:such run", *args]) == 1  # not even a run's name: the model's error, not the run's
    assert "unknown model 'no:such run'" in capsys.readouterr().err


def test_save_then_continue_a_chat(home: Home, tiny_model_dir: Path, capsys) -> None:
    args = ["chat", str(tiny_model_dir), "--max-new-tokens", "4", "--seed", "2"]
    assert main([*args, "--prompt", "日本の首都は？", "--save", "first"]) == 0
    first = capsys.readouterr().out.strip()
    session = load_session(home, "first")
    assert [m.role for m in session.messages] == ["user", "assistant"]
    assert session.messages[0].content == "日本の首都は？" and session.messages[1].content.strip() == first
    assert session.target == str(tiny_model_dir) and session.params.seed == 2
    assert main(["chat", "--load", "first", "--prompt", "ありがとう", "--save", "first"]) == 0
    assert [m.content for m in load_session(home, "first").messages][2] == "ありがとう"


def test_interactive_chat_with_commands(home: Home, tiny_model_dir: Path, monkeypatch, capsys) -> None:
    script = "hello\n/set temperature=0\n/system 丁寧に\n/tokens\n/params\nagain\n/save talk\n/quit\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    assert main(["chat", str(tiny_model_dir), "--max-new-tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\n?you> [1-9]\d* of 512 tokens\n", out) and "temperature=0.0" in out
    session = load_session(home, "talk")
    assert [m.content for m in session.messages if m.role == "user"] == ["hello", "again"]
    assert session.params.system_prompt == "丁寧に" and session.params.temperature == 0


@pytest.mark.parametrize(("extra", "message"), [
    (["--adapter", "no-such-run"], "no adapter for 'no-such-run'"),
    (["--backend", "llama.cpp"], "llama.cpp runs only GGUF files"),
    (["--set", "temperature=-1"], "generation.temperature"),
])
def test_errors_are_one_screen(home: Home, tiny_model_dir: Path, capsys, extra, message) -> None:
    assert main(["chat", str(tiny_model_dir), "--prompt", "hi", *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") or "\nerror: " in err
    assert message in err and "Traceback" not in err


def test_judging_answers_through_slash_commands_writes_the_dataset(home: Home, tiny_model_dir: Path, monkeypatch,
                                                                   capsys) -> None:
    script = f"hello\n/good\n/good\nagain\n/prefer left\n/edit\n{EDITED}\n.\n/dataset other\nnext\n/bad\n/quit\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    args = ["--system", SETTINGS["system_prompt"], "--temperature", "1", "--max-new-tokens", "4", "--seed", "3"]
    assert main(["chat", str(tiny_model_dir), *args]) == 0
    out, err = capsys.readouterr()
    chat, other = home.root / "datasets" / "chat", home.root / "datasets" / "other"
    # The answers are the tiny model's random words; each record holds what was shown.
    first = collected(chat / "kto.jsonl")[0]["completion"][0]["content"]
    second = collected(chat / "pairs.jsonl")[0]["rejected"][0]["content"]
    third = collected(other / "kto.jsonl")[0]["completion"][0]["content"]
    assert all(f"you> {answer}\n" in out for answer in (first, second, third)) and first != second
    assert err.count("dataset chat: 0 SFT · 0 pairs · 1 KTO") == 1
    assert "this answer is already judged (good)" in err and "picking a side needs two answers side by side" in err
    assert "dataset chat: 1 SFT · 1 pairs · 1 KTO" in err and "dataset other: 0 SFT · 0 pairs · 0 KTO" in err
    conversation = check_good_then_edit(chat, first, second, f"{tiny_model_dir.name} [transformers]")
    # The conversation went on from the edited answer.
    assert collected(other / "kto.jsonl") == [{
        "prompt": [*conversation, user("next")], "completion": [assistant(third)], "label": False,
        "meta": {"judgement": "bad", "models": {"answered": f"{tiny_model_dir.name} [transformers]"},
                 "generation": SETTINGS}}]
    assert not check_file(other / "kto.jsonl").errors


def test_prefer_a_side_in_compare_mode(run_with_adapter, monkeypatch, capsys) -> None:
    root, model = run_with_adapter
    monkeypatch.setenv("TANREN_HOME", str(root))
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n/good\n/prefer middle\n/prefer right\n/quit\n"))
    args = ["--adapter", "tuned", "--vs", "base", "--temperature", "1", "--max-new-tokens", "8", "--seed", "4"]
    assert main(["chat", str(model), *args, "--dataset", "compared"]) == 0
    out, err = capsys.readouterr()
    assert "two targets answered; pick the better one" in err and "prefer 'middle'? say left or right" in err
    assert "dataset compared: 0 SFT · 1 pairs · 0 KTO" in err
    path = root / "datasets" / "compared" / "pairs.jsonl"
    [pair] = collected(path)
    right, left = pair["chosen"][0]["content"], pair["rejected"][0]["content"]
    tuned, base = f"{model.name} [transformers] + tuned", f"{model.name} [transformers]"
    assert f"== {tuned} ==\n{left}\n== {base} ==\n{right}\n" in out
    generation = {"temperature": 1.0, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.1, "max_new_tokens": 8,
                  "seed": 4, "system_prompt": ""}
    assert pair == {
        "prompt": [{"role": "user", "content": "hello"}], "chosen": [assistant(right)], "rejected": [assistant(left)],
        "meta": {"judgement": "prefer", "models": {"chosen": base, "rejected": tuned}, "generation": generation}}
    assert not check_file(path).errors

