"""`tanren data check` and `tanren data preview`: exit codes, reports, JSON, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.data import SAMPLE_ALPACA, SAMPLE_CHAT, SAMPLE_HELDOUT
from engine.paths import Home
from tests.cli import tanren
from tests.data_files import chat, write_jsonl, write_lines, write_pair_data
from tui.entry import main


def test_check_a_usable_file(home: Home, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", str(SAMPLE_CHAT), "--base", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{SAMPLE_CHAT}: messages format (detected from line 1), 112 usable examples")
    assert "length (tokens, " in out and "trained" in out and "split (seed 42): train 90 · validation 11 · test 11" in out
    assert out.rstrip().endswith("usable, no problems found")


def test_check_reports_errors_and_warnings_by_line(home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_lines(tmp_path / "bad.jsonl", [
        json.dumps(chat("日本の首都は？", "東京です。"), ensure_ascii=False),
        json.dumps(chat("日本の首都は？", "東京です。"), ensure_ascii=False),
        '{"messages": [{"role": "user", "content": "hi"}]}',
        "{broken",
    ])
    assert main(["data", "check", str(path), "--no-tokens"]) == 1
    out = capsys.readouterr().out
    assert "errors (the file cannot be used):" in out and "warnings:" in out
    assert f"{path}:3: no assistant turn after a user turn (roles: user)" in out
    assert f"{path}:4: Expecting property name enclosed in double quotes (column 2)" in out
    assert f"{path}:2: same as line 1" in out and "hint: " in out
    assert out.rstrip().endswith("not usable: fix the 2 errors above")


def test_a_bad_line_is_reported_in_the_users_language_naming_its_file_and_line(
        home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_lines(tmp_path / "chat.jsonl", [json.dumps(chat("q?", "answer.")),
                                                 '{"messages": [{"role": "user", "content": "hi"}]}'])
    monkeypatch.setenv("TANREN_LANG", "pseudo")  # every message through the catalog shows as ⟦message⟧
    result = tanren("data", "check", str(path), "--no-tokens", home=home)
    assert result.returncode == 1, result.stderr
    assert "⟦conversation without an assistant reply⟧: 1" in result.stdout
    assert f"    {path}:2: ⟦no assistant turn after a user turn (roles: user)⟧" in result.stdout
    assert "⟦not usable: fix the 1 error above⟧" in result.stdout


def test_warnings_alone_exit_zero(home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_jsonl(tmp_path / "dup.jsonl", [chat("q?", "answer."), chat("q?", "answer.")])
    assert main(["data", "check", str(path), "--no-tokens"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("usable (1 warning)")


def test_check_json(home: Home, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["data", "check", str(SAMPLE_ALPACA), "--base", str(tiny_model_dir), "--validation", str(SAMPLE_HELDOUT),
            "--max-length", "64", "--split", "0.9,0,0.1", "--seed", "7", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["usable"] is True and report["format"] == "alpaca" and report["detected_at"] == 2
    assert report["examples"] == 90 and report["validation_examples"] == 40 and report["seed"] == 7
    assert report["split"] == [81, 40, 9] and report["max_length"] == 64
    (too_long,) = report["findings"]
    assert too_long["code"] == "too-long" and too_long["severity"] == "warning" and too_long["count"] > 0
    assert report["lengths"]["unit"] == "tokens" and report["lengths"]["max"] > 64


def test_bad_options_and_files_are_one_line_errors(home: Home, tmp_path: Path) -> None:
    result = tanren("data", "check", str(tmp_path / "missing.jsonl"), "--no-tokens", home=home)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: {tmp_path / 'missing.jsonl'} does not exist") and "Traceback" not in result.stderr
    result = tanren("data", "check", str(SAMPLE_CHAT), "--no-tokens", "--split", "0.5,0.1", home=home)
    assert result.returncode == 1 and "data.split" in result.stderr and "Traceback" not in result.stderr
    sjis = tmp_path / "sjis.jsonl"
    sjis.write_bytes('{"text": "日本語"}\n'.encode("cp932"))
    result = tanren("data", "check", str(sjis), "--no-tokens", home=home)
    assert result.returncode == 1 and "Shift_JIS" in result.stdout and "iconv -f CP932" in result.stdout
    assert "Traceback" not in result.stderr


def test_preview_marks_the_trained_tokens(home: Home, tiny_model_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = write_lines(tmp_path / "p.jsonl", [
        "{oops",
        json.dumps(chat("日本の首都は？", "東京です。"), ensure_ascii=False),
        json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}),
        json.dumps(chat("third?", "not shown")),
    ])
    assert main(["data", "preview", str(path), "-n", "2", "--base", str(tiny_model_dir)]) == 0
    captured = capsys.readouterr()
    assert f"skipped {path}:1: invalid JSON" in captured.err
    assert captured.out.count("── ") == 2 and f"── {path}:2 · " in captured.out and "not shown" not in captured.out
    assert "<|im_start|>user\n日本の首都は？<|im_end|>\n<|im_start|>assistant\n⟦東京です。<|im_end|>⟧" in captured.out
    assert "⟦Hello!<|im_end|>⟧" in captured.out


def test_preference_data_is_checked_and_previewed_with_both_answers_marked(
        home: Home, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = write_pair_data(tmp_path / "pairs.jsonl", examples=12)
    assert main(["data", "check", str(pairs), "--base", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{pairs}: preference format (detected from line 1), 12 usable preference pairs")
    assert "(each pair counts as two conversations" in out and out.rstrip().endswith("usable, no problems found")

    assert main(["data", "preview", str(pairs), "-n", "1", "--base", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("chosen (desirable) answers are marked ⟦like this⟧, rejected (undesirable) ones marked "
                          "⟪like this⟫")
    assert (f"── {pairs}:1 · chosen: " in out and "<|im_start|>user\nWhat is the capital of France? (0)<|im_end|>\n"
            "<|im_start|>assistant\n⟦Paris.<|im_end|>⟧\n⟪Lyon.<|im_end|>⟫" in out)

    rated = write_jsonl(tmp_path / "kto.jsonl", [{"prompt": "日本の首都は？", "completion": "東京です。", "label": True},
                                                 {"prompt": "富士山の高さは？", "completion": "高いです。", "label": False}])
    assert main(["data", "check", str(rated), "--no-tokens", "--batch-size", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{rated}: kto format (detected from line 1), 2 usable rated examples (1 desirable, "
                          "1 undesirable)")
    assert "micro-batches too small for KTO's KL term: 1" in out and f"{rated}: micro-batches of 1 example" in out
    assert main(["data", "preview", str(rated), "-n", "2", "--base", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert "label true ──" in out and "⟦東京です。<|im_end|>⟧" in out and "⟪高いです。<|im_end|>⟫" in out


def test_data_without_an_action_prints_help(home: Home) -> None:
    result = tanren("data", home=home)
    assert result.returncode == 2 and "check" in result.stdout and "preview" in result.stdout
    for action in ("check", "preview"):
        result = tanren("data", action, "--help", home=home)
        assert result.returncode == 0 and "--max-length" in result.stdout and "--base" in result.stdout


@pytest.mark.real_model
def test_check_uses_the_default_model_by_default(shared_home: Home, default_model_dir: Path) -> None:
    result = tanren("data", "check", str(SAMPLE_CHAT), home=shared_home)
    assert result.returncode == 0, result.stderr
    assert "length (tokens, smollm2-135m-instruct)" in result.stdout


def test_a_missing_file_is_reported_before_any_tokenizer_loads(home: Home, tmp_path: Path) -> None:
    # The default base is not converted in a fresh home: reaching it would take a minute.
    result = tanren("data", "check", str(tmp_path / "missing.jsonl"), home=home)
    assert result.returncode == 1 and "does not exist" in result.stderr
    assert not home.models.exists()
    result = tanren("data", "preview", str(tmp_path), home=home)
    assert result.returncode == 1 and "is not a file" in result.stderr and not home.models.exists()
