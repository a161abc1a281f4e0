"""Every file type and record format loads into the same Example representation."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.data import Example, load_examples
from engine.data.loading import ExampleStream
from engine.errors import DataError
from engine.messages import Message
from tests.data_files import chat, write_csv, write_json, write_jsonl, write_lines, write_parquet

QA = (Message("user", "日本の首都は？"), Message("assistant", "東京です。"))


@pytest.mark.parametrize(
    ("record", "format", "expected"),
    [
        ({"text": "吾輩は猫である。"}, "text", ((), "吾輩は猫である。")),
        ({"instruction": "日本の首都は？", "output": "東京です。"}, "alpaca", (QA, None)),
        ({"instruction": "日本の首都は？", "input": "", "output": "東京です。"}, "alpaca", (QA, None)),
        ({"instruction": "日本の首都は？", "response": "東京です。"}, "instruction", (QA, None)),
        (
            {"conversations": [{"from": "human", "value": "日本の首都は？"}, {"from": "gpt", "value": "東京です。"}]},
            "sharegpt", (QA, None),
        ),
        (chat("日本の首都は？", "東京です。"), "messages", (QA, None)),
    ],
)
def test_each_format_is_detected_and_normalized(tmp_path: Path, record: dict, format: str, expected: tuple) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [record, record])
    stream = ExampleStream(path)
    examples = [item for _line, item in stream]
    assert stream.format == format and stream.detected_at == 1
    assert [(e.messages, e.text) for e in examples] == [expected, expected]
    assert [e.source for e in examples] == [f"{path}:1", f"{path}:2"]
    assert all(e.is_text == (format == "text") for e in examples)


def test_alpaca_input_and_system_become_part_of_the_conversation(tmp_path: Path) -> None:
    record = {"system": "丁寧に答えて", "instruction": "英語に翻訳して", "input": "ありがとう", "output": "Thank you"}
    (example,) = load_examples(write_jsonl(tmp_path / "a.jsonl", [record]))
    assert example.messages == (
        Message("system", "丁寧に答えて"), Message("user", "英語に翻訳して\n\nありがとう"), Message("assistant", "Thank you"),
    )


def test_sharegpt_system_and_multi_turn(tmp_path: Path) -> None:
    record = {"conversations": [
        {"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"},
        {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Goodbye!"},
    ]}
    (example,) = load_examples(write_jsonl(tmp_path / "s.jsonl", [record]))
    assert [m.role for m in example.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert example.responses() == ("Hello!", "Goodbye!")


def test_turns_may_use_either_key_pair_and_empty_system_prompts_are_dropped(tmp_path: Path) -> None:
    record = {"messages": [
        {"role": "system", "content": ""}, {"from": "human", "value": "Hi"}, {"role": "assistant", "content": "Hello!"},
    ]}
    (example,) = load_examples(write_jsonl(tmp_path / "m.jsonl", [record]))
    assert example.messages == (Message("user", "Hi"), Message("assistant", "Hello!"))


def test_format_option_overrides_detection(tmp_path: Path) -> None:
    # A record with both `messages` and `text` is detected as messages; --format text reads the text.
    record = {**chat("Q?", "A."), "text": "raw text"}
    path = write_jsonl(tmp_path / "both.jsonl", [record])
    assert load_examples(path)[0].messages == (Message("user", "Q?"), Message("assistant", "A."))
    assert load_examples(path, "text")[0].text == "raw text"


def test_json_array_pretty_printed_reports_the_line_of_each_record(tmp_path: Path) -> None:
    records = [{"instruction": f"質問{i}", "output": f"答え{i}です。"} for i in range(3)]
    path = write_json(tmp_path / "data.json", records)  # indent=2: one key per line
    examples = load_examples(path)
    assert [e.messages[0].content for e in examples] == ["質問0", "質問1", "質問2"]
    lines = path.read_text(encoding="utf-8").splitlines()
    for example in examples:
        line = int(example.source.rsplit(":", 1)[1])
        assert lines[line - 1].strip() == "{"
        assert example.messages[0].content in lines[line]


def test_json_array_across_many_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tiny chunks make records, strings and \\u escapes straddle chunk boundaries.
    from engine.data import readers

    monkeypatch.setattr(readers, "CHUNK", 7)
    records = [{"text": f"日本語のテキスト {i} " + "あ" * i} for i in range(40)]
    path = tmp_path / "escaped.json"
    import json

    path.write_text(json.dumps(records, ensure_ascii=True), encoding="utf-8")  # \\uXXXX escapes
    assert [e.text for e in load_examples(path)] == [r["text"] for r in records]


def test_a_json_file_with_one_object_per_line_is_read_as_json_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "lines.json", [chat("a?", "b."), chat("c?", "d.")])
    assert len(load_examples(path)) == 2


def test_csv_tsv_and_parquet(tmp_path: Path) -> None:
    rows = [["日本の首都は？", "", "東京です。"], ["Capital of France?", "", "Paris."]]
    csv_path = write_csv(tmp_path / "d.csv", ["instruction", "input", "output"], rows)
    tsv_path = write_csv(tmp_path / "d.tsv", ["instruction", "input", "output"], rows, delimiter="\t")
    parquet_path = write_parquet(tmp_path / "d.parquet", [chat("日本の首都は？", "東京です。"), chat("Capital of France?", "Paris.")])
    expected = [QA, (Message("user", "Capital of France?"), Message("assistant", "Paris."))]
    for path in (csv_path, tsv_path, parquet_path):
        examples = load_examples(path)
        assert [e.messages for e in examples] == expected
    assert [e.source for e in load_examples(csv_path)] == [f"{csv_path}:2", f"{csv_path}:3"]
    assert [e.source for e in load_examples(parquet_path)] == [f"{parquet_path}:1", f"{parquet_path}:2"]


def test_csv_conversation_column_holds_json_and_quoted_line_breaks_keep_line_numbers(tmp_path: Path) -> None:
    import json

    conversation = json.dumps(chat("Hi", "Hello!")["messages"])
    path = write_csv(tmp_path / "c.csv", ["messages"], [[conversation]])
    assert load_examples(path)[0].messages == (Message("user", "Hi"), Message("assistant", "Hello!"))
    path = write_csv(tmp_path / "multi.csv", ["text"], [["一行目\n二行目"], ["next"]])
    examples = load_examples(path)
    assert examples[0].text == "一行目\n二行目" and examples[1].source.endswith(":4")


def test_utf8_bom_is_accepted_silently(tmp_path: Path) -> None:
    for name, body in (
        ("bom.jsonl", '{"text": "こんにちは"}\n'),
        ("bom.json", '[{"text": "こんにちは"}]'),
        ("bom.csv", "text\nこんにちは\n"),
    ):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
        assert [e.text for e in load_examples(path)] == ["こんにちは"]


def test_blank_lines_in_json_lines_are_skipped_and_line_numbers_stay_true(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "gaps.jsonl", ['{"text": "a b c"}', "", "   ", '  {"text": "d e f"}  \r'])
    assert [(e.source, e.text) for e in load_examples(path)] == [(f"{path}:1", "a b c"), (f"{path}:4", "d e f")]


def test_file_level_problems_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as missing:
        load_examples(tmp_path / "nope.jsonl")
    assert missing.value.where == str(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="not a file"):
        load_examples(tmp_path)
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(DataError, match="cannot tell the file type"):
        load_examples(tmp_path / "notes.txt")
    write_json(tmp_path / "object.json", {"data": [{"text": "x"}]})  # type: ignore[arg-type]
    with pytest.raises(DataError, match="single JSON object"):
        load_examples(tmp_path / "object.json")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_examples(tmp_path / "broken.parquet")
    with pytest.raises(DataError, match="unknown format"):
        load_examples(write_jsonl(tmp_path / "ok.jsonl", [{"text": "x"}]), "yaml")


def test_example_is_frozen_and_hashable() -> None:
    example = Example(QA, None, "f.jsonl:1")
    with pytest.raises(AttributeError):
        example.text = "x"  # type: ignore[misc]
    assert {example, Example(QA, None, "f.jsonl:1")} == {example}
