"""Warnings leave a file usable but point at each suspicious example; lengths and the split plan."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from engine.data import SAMPLE_ALPACA, SAMPLE_CHAT, SAMPLE_HELDOUT, check_file, load_examples, render_example
from engine.data.lengths import TokenLengths
from engine.data.windows import window_count
from tests.data_files import chat, write_jsonl
from tests.tiny_model import build_tokenizer

VARIED = [chat(f"質問その{i}：今日の調子はどうですか？", f"答えその{i}：元気です、ありがとう。") for i in range(30)]


def warning(report, code: str):
    assert report.usable, report.errors
    (finding,) = [f for f in report.warnings if f.code == code]
    assert finding.severity == "warning"
    return finding


def test_a_clean_file_has_no_findings(tmp_path: Path) -> None:
    report = check_file(write_jsonl(tmp_path / "clean.jsonl", VARIED))
    assert report.usable and report.findings == () and report.examples == 30
    assert report.format == "messages" and report.split == (24, 3, 3)


def test_duplicates_point_at_the_first_copy(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dups.jsonl", [*VARIED, VARIED[3], VARIED[3], VARIED[7]])
    finding = warning(check_file(path), "duplicate")
    assert finding.count == 3
    assert finding.examples == (f"{path}:31: same as line 4", f"{path}:32: same as line 4", f"{path}:33: same as line 8")


def test_very_short_outputs(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "short.jsonl", [*VARIED, chat("Is it?", "ok"), chat("Is it?", " y "), chat("Hm?", "yes")])
    finding = warning(check_file(path), "short-output")
    assert finding.examples == (f"{path}:31: output 'ok'", f"{path}:32: output 'y'")


@pytest.mark.parametrize(
    ("text", "found", "kind"),
    [
        ("ご連絡は taro.yamada@example.co.jp までお願いします。", "taro.yamada@example.co.jp", "e-mail address"),
        ("携帯は090-1234-5678です。", "090-1234-5678", "phone number"),
        ("電話番号は09012345678です。", "09012345678", "phone number"),
        ("代表番号：03-1234-5678", "03-1234-5678", "phone number"),
        ("フリーダイヤル 0120-123-456", "0120-123-456", "phone number"),
        ("連絡先：０８０－１２３４－５６７８", "０８０－１２３４－５６７８", "phone number"),
        ("From abroad call +81 90-1234-5678.", "+81 90-1234-5678", "phone number"),
        ("Call me at (555) 123-4567 tomorrow.", "(555) 123-4567", "phone number"),
    ],
)
def test_personal_data_is_flagged_and_masked(tmp_path: Path, text: str, found: str, kind: str) -> None:
    path = write_jsonl(tmp_path / "pii.jsonl", [*VARIED, chat("連絡先を教えて", text)])
    finding = warning(check_file(path), "personal-data")
    (example,) = finding.examples
    shown = example.removeprefix(f"{path}:31: {kind} ")
    assert shown != example and len(shown) == len(found) and shown[:2] == found[:2] and shown[-2:] == found[-2:]
    assert found not in example and "*" * (len(found) - 4) in shown  # never repeated whole in the report


@pytest.mark.parametrize(
    "text",
    ["2024-01-15に発売されました。", "価格は1,980円です。", "バージョン1.2.3", "IPは192.168.1.10です", "ISBN 978-4-06-123456-7",
     "東京タワーは333メートルです。", "郵便番号は100-0001です。", "3.14159265358979"],
)
def test_numbers_that_are_not_phone_numbers_pass(tmp_path: Path, text: str) -> None:
    report = check_file(write_jsonl(tmp_path / "ok.jsonl", [*VARIED, chat("数字は？", text)]))
    assert report.findings == ()


def test_low_diversity(tmp_path: Path) -> None:
    same = [chat(f"Question number {i}?", "I'm sorry, I cannot help with that.") for i in range(25)]
    path = write_jsonl(tmp_path / "same.jsonl", VARIED + same)
    finding = warning(check_file(path), "low-diversity")
    assert finding.examples == (f"{path}: 31 distinct responses among 55 examples; the most common (first at line 31) "
                                "appears 25 times",)
    few = write_jsonl(tmp_path / "few.jsonl", same[:10])  # too few examples to judge diversity
    assert [f.code for f in check_file(few).findings] == []


def test_leakage_between_train_and_validation(tmp_path: Path) -> None:
    # Same question with another answer, other spacing or case: still leakage. A new question is not.
    train = write_jsonl(tmp_path / "train.jsonl", [*VARIED, chat("What is the Capital of Japan?", "Tokyo.")])
    leaked = [chat(" 質問その5：今日の調子はどうですか？\n", "別の答えです。"), chat("what is the capital  of japan?", "It is Tokyo.")]
    validation = write_jsonl(tmp_path / "val.jsonl", [chat("新しい質問ですか？", "はい、そうです。"), *leaked])
    report = check_file(train, validation_path=validation)
    finding = warning(report, "leakage")
    assert finding.examples == (f"{validation}:2: same prompt as {train}:6", f"{validation}:3: same prompt as {train}:31")
    assert report.validation_examples == 3 and report.split == (28, 3, 3)


def test_too_long_conversations_say_how_many_tokens_are_cut_and_long_texts_become_windows(tmp_path: Path) -> None:
    tokenizer = build_tokenizer()
    conversations = [*VARIED, chat("長い答えをください。", "東京は日本の首都で、とても大きな都市です。" * 12)]
    texts = [{"text": f"The capital of Japan is Tokyo. {i}"} for i in range(3)] + [{"text": "Tokyo is big. " * 40}]
    for path in (write_jsonl(tmp_path / "long.jsonl", conversations), write_jsonl(tmp_path / "text.jsonl", texts)):
        report = check_file(path, tokenizer=tokenizer, max_length=128)
        examples = load_examples(path)
        (longest,) = [render_example(e, tokenizer, max_length=128) for e in examples[-1:]]
        total = len(longest.input_ids) + longest.truncated_tokens
        assert longest.truncated_tokens > 0 and report.lengths.unit == "tokens" and report.lengths.max == total
        if examples[-1].is_text:  # nothing is cut: the text is trained in windows
            assert report.usable and not report.warnings
            assert report.lengths.windows == 3 + window_count(total, max_length=128, stride=128) > 4
            continue
        assert report.lengths.windows is None and warning(report, "too-long").examples == (
            f"{examples[-1].source}: {total:,} tokens, {longest.truncated_tokens:,} would be cut",
        )


def test_truncation_that_leaves_nothing_to_train_is_called_out(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [chat("長い質問です。" * 40, "短い答えです。")])
    (example,) = warning(check_file(path, tokenizer=build_tokenizer(), max_length=64), "too-long").examples
    assert example.endswith("(no trained tokens left)")


def test_the_byte_bound_finds_every_over_long_example(tmp_path: Path) -> None:
    # Lengths straddling the limit, Japanese and English, one and several turns: the records the
    # cheap bound lets through must be exactly those that render within max_length.
    tokenizer = build_tokenizer()
    records = []
    texts = []
    for n in range(1, 60, 3):
        records.append(chat("質問" * n, "答えです。" * (n // 2 + 1)))
        records.append(chat("q " * n, "The answer is forty-two. " * (n // 4 + 1), system="Be brief."))
        texts.append({"text": "こんにちは、元気ですか？" * n})
    found = []
    lengths = TokenLengths(tokenizer, 96, lambda code, source, _detail: found.append((code, source)))
    examples = load_examples(write_jsonl(tmp_path / "chat.jsonl", records)) + load_examples(
        write_jsonl(tmp_path / "text.jsonl", texts)
    )
    for example in examples:
        lengths.add(example)
    lengths.flush()
    rendered = [render_example(e, tokenizer, max_length=96) for e in examples]
    truth = [("too-long", e.source) for e, r in zip(examples, rendered) if r.truncated_tokens and not e.is_text]
    assert found == truth and 5 < len(truth) < len(records) - 5
    windows = [window_count(len(r.input_ids) + r.truncated_tokens, max_length=96, stride=96)
               for e, r in zip(examples, rendered) if e.is_text]
    assert lengths.windows == sum(windows) and 5 < windows.count(1) < len(windows) - 5  # texts cut or not, all counted


def test_token_statistics_come_from_a_reproducible_sample(tmp_path: Path) -> None:
    tokenizer = build_tokenizer()
    examples = load_examples(write_jsonl(tmp_path / "v.jsonl", VARIED))

    def stats(sample_size: int):
        lengths = TokenLengths(tokenizer, 1024, lambda *_: None, sample_size=sample_size)
        for example in examples:
            lengths.add(example)
        return lengths.stats()

    full, sampled = stats(1000), stats(10)
    rendered = [render_example(e, tokenizer, max_length=1024) for e in examples]
    assert full.measured == 30 and full.total == sum(len(r.input_ids) for r in rendered)
    assert full.trained_share == pytest.approx(sum(sum(r.assistant_mask) for r in rendered) / full.total)
    assert sampled.measured == 10 and sampled.examples == 30 and sampled == stats(10)
    assert full.min <= sampled.min <= sampled.max <= full.max


def test_template_errors_are_reported_for_every_affected_record(tmp_path: Path) -> None:
    tokenizer = build_tokenizer()
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}{{ m['role'] + ': ' + m['content'] + eos_token }}{% endfor %}"
    )
    path = write_jsonl(tmp_path / "sys.jsonl", [*VARIED[:3], chat("q?", "a a", system="s"), chat("r?", "b b", system="t")])
    report = check_file(path, tokenizer=tokenizer)
    (finding,) = report.errors
    assert finding.code == "template-error" and finding.count == 2
    assert finding.examples[0].startswith(f"{path}:4: ") and "System role not supported" in finding.examples[0]


def test_big_files_are_streamed_with_progress(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    record = chat("これは少し長めの質問です。" * 20, "これは少し長めの答えです。" * 20)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(12_000):
            record["messages"][0]["content"] = f"{i}: " + record["messages"][0]["content"][-500:]
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    size = path.stat().st_size
    progress: list[float] = []
    tracemalloc.start()
    report = check_file(path, on_progress=lambda file, fraction: progress.append(fraction))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert report.usable and report.examples == 12_000
    assert size > 20_000_000 and peak < size / 10  # never loaded whole
    assert len(progress) >= 3 and progress == sorted(progress) and progress[-1] == 1.0


def test_the_sample_data_is_clean_and_the_heldout_file_never_leaks() -> None:
    counts = {}
    for path in (SAMPLE_CHAT, SAMPLE_ALPACA):
        report = check_file(path, validation_path=SAMPLE_HELDOUT)
        assert report.findings == (), report.findings
        counts[path.name] = report.examples
    assert counts["ja_en_chat.jsonl"] + counts["ja_en_alpaca.json"] >= 200
    formats = {check_file(p).format for p in (SAMPLE_CHAT, SAMPLE_ALPACA, SAMPLE_HELDOUT)}
    assert formats == {"messages", "alpaca"}
    texts = " ".join(c for p in (SAMPLE_CHAT, SAMPLE_ALPACA) for e in load_examples(p) for c in e.contents())
    assert sum(map(texts.count, "のはをです")) > 500 and texts.count(" the ") > 50  # Japanese and English
