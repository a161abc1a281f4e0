"""Every error makes the file unusable and is reported with file:line, why, and what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.data import check_file, load_examples
from engine.errors import DataError
from tests.data_files import chat, write_csv, write_json, write_lines

JAPANESE = '{"text": "日本の首都は東京です。"}\n'


def only_error(path: Path, **kwargs):
    report = check_file(path, **kwargs)
    assert not report.usable
    (finding,) = report.errors
    return finding


@pytest.mark.parametrize(
    ("lines", "code", "line", "detail"),
    [
        (['{"text": "ok ok"}', '{"text": "unterminated'], "invalid-json", 2, "Unterminated string"),
        (['{"text": "ok ok"}', '{"text": "x y"} trailing'], "invalid-json", 2, "Extra data (column 17)"),
        (['{"text": "ok ok"}', "[1, 2]"], "wrong-type", 2, "got a list"),
        (['{"text": "ok ok"}', '{"txt": "typo"}'], "missing-field", 2, "missing field 'text'"),
        (['{"text": "ok ok"}', '{"text": null}'], "missing-field", 2, "(null)"),
        (['{"text": "ok ok"}', '{"text": "   "}'], "empty-field", 2, "'text' is empty"),
        (['{"text": "ok ok"}', '{"text": 42}'], "wrong-type", 2, "'text' must be text, got a number 42"),
        (['{"instruction": "q", "output": "a a"}', '{"instruction": "q", "output": ["a"]}'], "wrong-type", 2,
         "'output' must be text"),
        (['{"instruction": "q", "output": "a a"}', '{"instruction": "q", "input": 3, "output": "a a"}'], "wrong-type", 2,
         "'input' must be text"),
        (['{"instruction": "q", "output": "a a"}', '{"instruction": "", "output": "a a"}'], "empty-field", 2,
         "'instruction' is empty"),
        (['{"messages": "hello"}'], "wrong-type", 1, "'messages' must be a list of turns"),
        (['{"messages": []}'], "empty-field", 1, "'messages' is an empty list"),
        (['{"messages": ["hi"]}'], "wrong-type", 1, "messages[0] must be an object"),
        (['{"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]}'], "missing-field", 1,
         "missing field messages[0].content"),
        (['{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]}'], "empty-field", 1,
         "messages[1].content is empty"),
        (['{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": {"a": 1}}]}'], "wrong-type",
         1, "messages[1].content must be text"),
        (['{"messages": [{"role": 1, "content": "q"}, {"role": "assistant", "content": "a"}]}'], "wrong-type", 1,
         "messages[0].role must be text"),
        (['{"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "a"}]}'], "unknown-role", 1,
         "messages[1].role is 'tool'"),
        (['{"conversations": [{"from": "human", "value": "q"}, {"from": "bot", "value": "a"}]}'], "unknown-role", 1,
         "conversations[1].from is 'bot'"),
        (['{"messages": [{"role": "user", "content": "q"}]}'], "no-assistant", 1, "roles: user"),
        (['{"messages": [{"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "q"}]}'], "no-assistant",
         1, "roles: assistant, user"),
        (['{"question": "q", "answer": "a"}'], "unknown-format", 1, "answer, question"),
    ],
)
def test_record_errors_name_the_line(tmp_path: Path, lines: list[str], code: str, line: int, detail: str) -> None:
    path = write_lines(tmp_path / "bad.jsonl", lines)
    finding = only_error(path)
    assert finding.code == code and finding.count == 1 and finding.severity == "error"
    (example,) = finding.examples
    assert example.startswith(f"{path}:{line}: ") and detail in example, example
    with pytest.raises(DataError) as raised:
        load_examples(path)
    assert raised.value.where == f"{path}:{line}" and detail in raised.value.message


def test_errors_are_counted_per_problem_with_the_first_few_lines(tmp_path: Path) -> None:
    lines = [json.dumps(chat(f"q{i}", f"answer {i}")) for i in range(5)] + ["{oops"] * 7
    report = check_file(write_lines(tmp_path / "many.jsonl", lines))
    (finding,) = report.errors
    assert finding.count == 7 and len(finding.examples) == 5
    assert [e.split(": ")[0].rsplit(":", 1)[1] for e in finding.examples] == ["6", "7", "8", "9", "10"]
    assert report.examples == 5


@pytest.mark.parametrize(("codec", "label", "iconv"), [("cp932", "Shift_JIS", "CP932"), ("euc_jp", "EUC-JP", "EUC-JP")])
def test_japanese_legacy_encodings_are_named_with_the_conversion_command(
    tmp_path: Path, codec: str, label: str, iconv: str
) -> None:
    for name in ("legacy.jsonl", "legacy.csv", "legacy.json"):
        body = {"legacy.jsonl": '{"text": "abc"}\n' + JAPANESE, "legacy.csv": "text\nabc\n日本の首都は東京です。\n",
                "legacy.json": '[\n{"text": "abc"},\n{"text": "日本の首都は東京です。"}]'}[name]
        path = tmp_path / name
        path.write_bytes(body.encode(codec))
        finding = only_error(path)
        assert finding.code == "not-utf8"
        assert label in finding.examples[0] and finding.examples[0].startswith(f"{path}:")
        assert finding.examples[0].endswith(f"(byte {11 if name != 'legacy.csv' else 1} of the line)")
        assert f"iconv -f {iconv} -t UTF-8 {path} > {path.with_name('legacy.utf8' + path.suffix)}" in finding.hint
        with pytest.raises(DataError, match="not UTF-8") as raised:
            load_examples(path)
        assert raised.value.where == f"{path}:{2 if name == 'legacy.jsonl' else 3}"


def test_utf16_and_unknown_encodings(tmp_path: Path) -> None:
    path = tmp_path / "utf16.jsonl"
    path.write_bytes(JAPANESE.encode("utf-16"))
    assert "UTF-16" in only_error(path).examples[0]
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"text": "café crème"}\n'.encode("latin-1"))
    finding = only_error(path)
    assert finding.code == "not-utf8" and "looks like" not in finding.examples[0] and "UTF-8" in finding.hint


@pytest.mark.parametrize(
    ("name", "body"),
    [("empty.jsonl", ""), ("blank.jsonl", "\n\n  \n"), ("empty.json", "[]"), ("header.csv", "text\n"), ("zero.csv", "")],
)
def test_empty_files(tmp_path: Path, name: str, body: str) -> None:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    finding = only_error(path)
    assert finding.code == "empty-file" and finding.examples == (f"{path}: no records",)
    with pytest.raises(DataError, match="holds no records"):
        load_examples(path)


def test_json_array_syntax_errors(tmp_path: Path) -> None:
    cases = {
        "missing-comma.json": ('[\n{"text": "a"}\n{"text": "b"}\n]', 3, "expected ',' or ']'"),
        "unclosed.json": ('[\n{"text": "a"},\n{"text": "b"}\n', 4, "not closed"),
        "bad-value.json": ('[\n{"text": "a"},\n{"text": tru}\n]', 3, "Expecting value"),
        "trailing.json": ('[{"text": "a"}]\nextra', 2, "after the closing"),
    }
    for name, (body, line, detail) in cases.items():
        path = tmp_path / name
        path.write_text(body, encoding="utf-8")
        finding = only_error(path)
        assert finding.code == "invalid-json" and finding.examples[0].startswith(f"{path}:{line}: "), finding
        assert detail in finding.examples[0]


def test_malformed_csv_rows(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("instruction,output\nq,a a\nq,a,extra\n", encoding="utf-8")
    finding = only_error(path)
    assert finding.code == "malformed-csv" and finding.examples == (f"{path}:3: 3 values for 2 columns",)
    path.write_text('text\nfine\n"unterminated\n', encoding="utf-8")
    assert only_error(path).code == "malformed-csv"
    path = write_csv(tmp_path / "json-cell.csv", ["messages"], [["[{\"role\": \"user\""]])
    assert "column 'messages'" in only_error(path).examples[0]


def test_a_bad_file_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    path = write_lines(data / "bad.jsonl", ["{oops"])
    write_json(data / "bad.json", [{"text": 1}])
    before = sorted(p.name for p in data.iterdir())
    for file in data.iterdir():
        assert not check_file(file).usable
        with pytest.raises(DataError):
            load_examples(file)
    assert sorted(p.name for p in data.iterdir()) == before and path.read_text() == "{oops\n"


def test_half_characters_and_absurd_nesting_are_errors_not_crashes(tmp_path: Path) -> None:
    # json accepts a lone \ud83d escape, but no tokenizer can encode the result.
    lines = ['{"text": "emoji \\ud83d\\ude00 is fine"}', '{"text": "cut emoji \\ud83d"}', "[" * 100_000 + "]" * 100_000]
    path = write_lines(tmp_path / "odd.jsonl", lines)
    report = check_file(path)
    (finding,) = report.errors
    assert finding.count == 2 and report.examples == 1
    assert finding.examples == (
        f"{path}:2: the escape \\ud83d is half of a character (an unpaired surrogate)",
        f"{path}:3: nested too deeply",
    )
    array = tmp_path / "odd.json"
    array.write_text('[{"text": "ok \\ud83d\\ude00"},\n{"text": "bad \\uD83D"}]', encoding="utf-8")
    (finding,) = check_file(array).errors
    assert finding.examples == (f"{array}:2: the escape \\ud83d is half of a character (an unpaired surrogate)",)
