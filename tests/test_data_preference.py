"""Preference data: each format detected and normalized to pairs or ratings, rendered so that only
the answers are scored, checked by the data doctor with file:line, split by prompt, and matched
against the training objective."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from engine.data import (
    SAMPLE_CHAT,
    SAMPLE_HELDOUT,
    SAMPLE_PREFERENCE,
    DataKind,
    PreferencePair,
    RatedExample,
    check_file,
    check_objective,
    data_kind,
    load_examples,
    load_records,
    load_splits,
    render_example,
)
from engine.data.kinds import PAIRS, RATINGS
from engine.data.loading import ExampleStream
from engine.errors import ConfigError, DataError
from engine.messages import Message
from engine.config import DataConfig
from tests.data_files import chat, pair, write_chat_data, write_csv, write_jsonl, write_lines, write_pair_data
from tests.tiny_model import build_tokenizer

ASK = (Message("user", "日本の首都は？"),)
MULTI_TURN = [{"role": "system", "content": "丁寧に"}, {"role": "user", "content": "Hi"},
              {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "日本の首都は？"}]


def turn(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def both(prompt: list[dict], chosen: str, rejected: str) -> dict:
    """trl's implicit-prompt record: two whole conversations."""
    return {"chosen": [*prompt, turn("assistant", chosen)], "rejected": [*prompt, turn("assistant", rejected)]}


def rating(prompt: str, completion: str, label) -> dict:
    return {"prompt": prompt, "completion": completion, "label": label}


def sharegpt(prompt: str, chosen: str, rejected: str) -> dict:
    return {"conversations": [{"from": "human", "value": prompt}],
            "chosen": {"from": "gpt", "value": chosen}, "rejected": {"from": "gpt", "value": rejected}}


@pytest.mark.parametrize(("record", "format", "expected"), [
    (pair("日本の首都は？", "東京です。", "大阪です。"), "preference", PreferencePair(ASK, "東京です。", "大阪です。", "")),
    ({"prompt": [turn("user", "日本の首都は？")], "chosen": [turn("assistant", "東京です。")],
      "rejected": [turn("assistant", "大阪です。")]}, "preference", PreferencePair(ASK, "東京です。", "大阪です。", "")),
    (both([turn("user", "日本の首都は？")], "東京です。", "大阪です。"), "implicit_preference",
     PreferencePair(ASK, "東京です。", "大阪です。", "")),
    (sharegpt("日本の首都は？", "東京です。", "大阪です。"), "sharegpt_preference",
     PreferencePair(ASK, "東京です。", "大阪です。", "")),
    (rating("日本の首都は？", "東京です。", True), "kto", RatedExample(ASK, "東京です。", True, "")),
    ({"prompt": [turn("user", "日本の首都は？")], "completion": [turn("assistant", "大阪です。")], "label": False}, "kto",
     RatedExample(ASK, "大阪です。", False, "")),
])
def test_each_preference_format_is_detected_and_normalized(tmp_path: Path, record: dict, format: str,
                                                           expected: PreferencePair | RatedExample) -> None:
    path = write_jsonl(tmp_path / "prefs.jsonl", [record])
    stream = ExampleStream(path)
    ((line, item),) = list(stream)
    assert (stream.format, stream.detected_at, line) == (format, 1, 1)
    assert item == replace(expected, source=f"{path}:1")


def test_every_format_has_a_kind_and_can_be_given(tmp_path: Path) -> None:
    from engine.data import FORMATS
    from engine.data.kinds import FORMAT_KINDS

    assert set(FORMAT_KINDS) == set(FORMATS)
    path = write_jsonl(tmp_path / "prefs.jsonl", [both([turn("user", "Q?")], "A.", "B.")])
    data, (first,) = load_records(path, "implicit_preference")
    assert (data.format, data.detected_at, first.chosen) == ("implicit_preference", None, "A.")
    assert DataConfig(format="kto").format == "kto"


def test_a_multi_turn_prompt_and_trl_s_text_prompt_beside_whole_conversations(tmp_path: Path) -> None:
    records = [
        {"prompt": MULTI_TURN, "chosen": "東京です。", "rejected": "大阪です。"},
        # trl reads a text prompt beside conversations that hold their own prompt as the implicit case
        {"prompt": "capital", **both(MULTI_TURN, "東京です。", "大阪です。")},
    ]
    data, (first, second) = load_records(write_jsonl(tmp_path / "multi.jsonl", records))
    assert data.kind == PAIRS and data.format == "preference"
    assert first.prompt == second.prompt == (Message("system", "丁寧に"), Message("user", "Hi"),
                                             Message("assistant", "Hello!"), Message("user", "日本の首都は？"))
    assert (second.chosen, second.rejected) == ("東京です。", "大阪です。")


def test_the_implicit_prompt_is_trl_s() -> None:
    # trl's extract_prompt splits these the same way (it is not used itself: it imports transformers,
    # seconds that a data check without tokens does not otherwise spend)
    from trl.data_utils import extract_prompt

    from engine.data.preference import normalize_preference

    for record in (both([turn("user", "Q?")], "A.", "B."), both(MULTI_TURN, "東京です。", "大阪です。")):
        ours = normalize_preference(record, "implicit_preference", "f:1").to_trl()
        theirs = extract_prompt(record)
        assert ours == theirs


# A good first record of each format, from which the format is detected
GOOD = {"preference": pair("Q?", "A.", "B."), "implicit_preference": both([turn("user", "Q?")], "A.", "B."),
        "sharegpt_preference": sharegpt("Q?", "A.", "B."), "kto": rating("Q?", "A.", True)}


@pytest.mark.parametrize(("format", "record", "code", "detail"), [
    ("preference", {"prompt": "q", "rejected": "b"}, "missing-field", "missing field 'chosen'"),
    ("preference", pair("q", "a", "  "), "empty-field", "'rejected' is empty"),
    ("preference", {"prompt": "q", "chosen": [], "rejected": "b"}, "wrong-type", "'chosen' is an empty list"),
    ("preference", {"prompt": [turn("user", "q")], "chosen": [turn("user", "a")], "rejected": "b"}, "wrong-type",
     "chosen[0] must be the assistant's answer, not a user turn"),
    ("preference", pair("q", "Paris.", " Paris. "), "same-answers", "chosen and rejected are both 'Paris.'"),
    ("preference", {"prompt": "q", "chosen": [{"role": ["user"], "content": "a"}], "rejected": "b"}, "wrong-type",
     "chosen[0].role must be text, got a list ['user']"),
    ("preference", {"prompt": [turn("user", "q"), turn("assistant", "a")], "chosen": "b", "rejected": "c"},
     "bad-prompt", "'prompt' ends with the assistant's turn, not the user's (roles: user, assistant)"),
    ("implicit_preference", both([turn("user", "q")], "same", "same"), "same-answers",
     "chosen and rejected are the same conversation, ending 'same'"),
    ("implicit_preference", {"chosen": [turn("user", "Q?"), turn("assistant", "A.")],
                             "rejected": [turn("user", "Other?"), turn("assistant", "B.")]}, "prompt-mismatch",
     "the conversations part at turn 1, before the last answer: chosen has user 'Q?', rejected has user 'Other?'"),
    ("implicit_preference", {"chosen": [turn("user", "Q?"), turn("assistant", "A.")], "rejected": [turn("user", "Q?")]},
     "no-assistant", "'rejected' does not end with an assistant answer (roles: user)"),
    ("implicit_preference", {"chosen": [turn("user", "Q?"), turn("assistant", "A.")],
                             "rejected": [turn("user", "Q?"), turn("assistant", "A."), turn("user", "More?"),
                                          turn("assistant", "B.")]}, "prompt-mismatch",
     "the conversations part at turn 3, before the last answer: chosen ends after 2 turns, rejected has user 'More?'"),
    ("implicit_preference", {"chosen": [turn("user", "Q?"), turn("assistant", "A.")], "rejected": "B."}, "wrong-type",
     "'rejected' must be a list of turns, got text 'B.'"),
    ("sharegpt_preference", {"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "a"}},
     "missing-field", "missing field 'rejected'"),
    ("sharegpt_preference", {**sharegpt("q", "a", "b"), "conversations": [{"from": "human", "value": "q"},
                                                                         {"from": "gpt", "value": "a"}]},
     "bad-prompt", "'conversations' ends with the assistant's turn, not the user's (roles: user, assistant)"),
    ("sharegpt_preference", {**sharegpt("q", "a", "b"), "rejected": {"from": "gpt", "value": ""}}, "empty-field",
     "rejected.value is empty"),
    ("kto", rating("q", "a", "yes"), "bad-label", "'label' must be true or false, got text 'yes'"),
    ("kto", rating("q", "a", 1), "bad-label", "'label' must be true or false, got a number 1"),
    ("kto", rating("q", "", True), "empty-field", "'completion' is empty"),
])
def test_each_problem_is_an_error_at_its_line(tmp_path: Path, format: str, record: dict, code: str, detail: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD[format], record])
    report = check_file(path)
    assert report.format == format and report.examples == 1
    (finding,) = report.errors
    assert (finding.code, finding.examples) == (code, (f"{path}:2: {detail}",))
    assert finding.hint


def test_kto_labels_of_one_kind_and_micro_batches_of_one_are_warned_about(tmp_path: Path) -> None:
    rated = [rating(f"質問{i}？", f"答え{i}です。", i % 3 != 0) for i in range(12)]
    mixed = write_jsonl(tmp_path / "mixed.jsonl", rated)
    report = check_file(mixed)
    assert report.usable and report.findings == () and report.labels == (8, 4) and report.kind == RATINGS

    happy = write_jsonl(tmp_path / "happy.jsonl", [{**r, "label": True} for r in rated])
    (finding,) = check_file(happy).warnings
    assert (finding.code, finding.examples) == ("one-label", (f"{happy}: all 12 labels are true",))

    one = check_file(mixed, micro_batch_size=1)
    (finding,) = one.warnings
    assert finding.code == "kto-batch" and "micro-batches of 1 example" in finding.examples[0]
    assert "--batch-size 2" in finding.hint
    assert check_file(write_pair_data(tmp_path / "pairs.jsonl", 12), micro_batch_size=1).findings == ()  # no KL term


def test_a_validation_file_of_another_kind_is_an_error(tmp_path: Path) -> None:
    pairs, chats = write_pair_data(tmp_path / "pairs.jsonl", 12), write_chat_data(tmp_path / "chat.jsonl", 3)
    report = check_file(pairs, validation_path=chats)
    (finding,) = report.errors
    assert (finding.code, finding.examples) == ("other-kind", (
        f"{chats}: SFT records (messages format), beside preference pairs (preference format) in {pairs}",))
    assert report.validation_format == "messages"


def test_csv_labels_are_read_as_booleans(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "kto.csv", ["prompt", "completion", "label"],
                     [["日本の首都は？", "東京です。", "true"], ["日本の首都は？", "大阪です。", "FALSE"], ["q", "a b", "maybe"]])
    report = check_file(path)
    (finding,) = report.errors
    assert (finding.code, report.labels) == ("bad-label", (1, 1))
    assert finding.examples == (f"{path}:4: 'label' must be true or false, got text 'maybe'",)


def test_pairs_are_checked_like_examples(tmp_path: Path) -> None:
    records = [pair(f"質問その{i}：調子はどうですか？", f"答えその{i}：元気です。", "元気じゃない。") for i in range(30)]
    path = write_jsonl(tmp_path / "pairs.jsonl", [*records, records[4], pair("q?", "ok", "no")])
    report = check_file(path)
    codes = {f.code: f.examples for f in report.warnings}
    assert codes["duplicate"] == (f"{path}:31: same as line 5",)
    assert codes["short-output"] == (f"{path}:32: output 'ok'",)  # the rejected "no" is short on purpose
    assert set(codes) == {"duplicate", "short-output"}


def test_lengths_count_both_answers_and_report_an_over_long_pair_once(tmp_path: Path) -> None:
    tokenizer = build_tokenizer()
    long_answer = "東京は日本の首都で、とても大きな都市です。" * 12
    records = [pair(f"質問{i}？", f"答え{i}です。", f"違う{i}です。") for i in range(5)]
    path = write_jsonl(tmp_path / "long.jsonl", [*records, pair("長い？", long_answer, long_answer + "違う")])
    report = check_file(path, tokenizer=tokenizer, max_length=128)
    (too_long,) = report.warnings
    last = load_records(path)[1][-1]
    rejected = render_example(last.rejected_example(), tokenizer, max_length=128)
    total = len(rejected.input_ids) + rejected.truncated_tokens  # the longer of the two
    assert too_long.examples == (f"{path}:6: {total:,} tokens, {rejected.truncated_tokens:,} would be cut",)
    assert report.lengths.examples == 12 and report.lengths.measured == 12


def test_only_the_final_answer_is_scored_as_trl_renders_it() -> None:
    from trl.data_utils import apply_chat_template

    tokenizer = build_tokenizer()
    prompt = tuple(Message(m["role"], m["content"]) for m in MULTI_TURN)
    pair_ = PreferencePair(prompt, "東京です。", "大阪です。", "f.jsonl:1")
    trl = apply_chat_template(pair_.to_trl(), tokenizer)
    for example, answer in zip(pair_.conversations(), (trl["chosen"], trl["rejected"])):
        rendered = render_example(example, tokenizer, max_length=1024)
        scored = [t for t, m in zip(rendered.input_ids, rendered.assistant_mask) if m]
        start = rendered.assistant_mask.index(1)
        assert tokenizer.decode(scored) == answer.rstrip()  # "Hello!" of the earlier turn is prompt, not scored
        assert tokenizer.decode(rendered.input_ids[:start]) == trl["prompt"]
    rated = RatedExample(prompt, "東京です。", True, "f.jsonl:1").example()
    assert render_example(rated, tokenizer, max_length=1024) == render_example(pair_.chosen_example(), tokenizer,
                                                                              max_length=1024)


def test_pairs_split_by_prompt(tmp_path: Path) -> None:
    # The same question answered twice (another pair) never lands on both sides of a cut
    records = [pair(f"質問{i % 20}？", f"答え{i}です。", f"違う{i}です。") for i in range(40)]
    config = DataConfig(path=str(write_jsonl(tmp_path / "pairs.jsonl", records)), split=(0.5, 0.25, 0.25))
    splits = load_splits(config, kind=PAIRS, needs="DPO")
    parts = [{p.prompt for p in part} for part in (splits.train, splits.validation, splits.test)]
    assert sum(map(len, (splits.train, splits.validation, splits.test))) == 40
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert load_splits(config, kind=None) == splits


def test_an_objective_that_does_not_fit_the_data_is_one_clear_error(tmp_path: Path) -> None:
    sft = data_kind(write_chat_data(tmp_path / "chat.jsonl", 3))
    pairs = data_kind(write_pair_data(tmp_path / "pairs.jsonl", 3))
    ratings = data_kind(write_jsonl(tmp_path / "kto.jsonl", [rating("q", "a", False)]))
    assert (sft.kind, pairs.kind, ratings.kind) == ("sft", "pairs", "ratings")
    for objective, data in (("sft", sft), ("dpo", pairs), ("orpo", pairs), ("kto", ratings)):
        check_objective(objective, data)

    with pytest.raises(ConfigError) as dpo:
        check_objective("dpo", sft)
    assert dpo.value.message == (f"DPO needs preference pairs, but {tmp_path / 'chat.jsonl'} holds SFT records "
                                 "(messages format, detected from line 1)")
    assert dpo.value.where == f"{tmp_path / 'chat.jsonl'}:1"
    assert "formats preference, implicit_preference, sharegpt_preference" in dpo.value.hint
    assert "SFT records train with SFT" in dpo.value.hint
    with pytest.raises(ConfigError, match=r"^KTO needs KTO ratings, but .*pairs.jsonl holds preference pairs") as kto:
        check_objective("kto", pairs)
    assert "preference pairs train with DPO or ORPO" in kto.value.hint
    with pytest.raises(ConfigError, match=r"^SFT needs SFT records, but .*pairs.jsonl holds preference pairs"):
        check_objective("sft", pairs)
    with pytest.raises(ConfigError, match="training.objective is 'ppo'"):
        check_objective("ppo", sft)
    assert check_objective("dpo", DataKind("given.jsonl", "sharegpt_preference", None)) is None


def test_sft_loading_refuses_other_kinds_of_data(tmp_path: Path) -> None:
    path = write_pair_data(tmp_path / "pairs.jsonl", 3)
    with pytest.raises(DataError, match=r"^SFT needs SFT records, but .* holds preference pairs \(preference format"):
        load_examples(path)
    with pytest.raises(DataError, match="^SFT needs SFT records"):
        load_splits(DataConfig(path=str(path)))
    assert len(load_examples(write_chat_data(tmp_path / "chat.jsonl", 2))) == 2
    broken = write_lines(tmp_path / "broken.jsonl", ["{oops", json.dumps(chat("q", "a"))])
    with pytest.raises(DataError) as error:
        data_kind(broken)
    assert error.value.where == f"{broken}:1"


def test_the_preference_sample_is_clean_bilingual_and_drawn_from_the_training_sample() -> None:
    report = check_file(SAMPLE_PREFERENCE, tokenizer=build_tokenizer())
    assert report.findings == () and report.format == "preference" and 40 <= report.examples <= 80
    _, pairs = load_records(SAMPLE_PREFERENCE)
    japanese = [p for p in pairs if any("\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff"
                                        for c in p.prompt[-1].content)]
    assert 0.3 < len(japanese) / len(pairs) < 0.7
    assert any(len(p.prompt) > 1 for p in pairs)  # system prompts and earlier turns too
    trained = {e.prompt_key() for e in load_examples(SAMPLE_CHAT)}
    held_out = {e.prompt_key() for e in load_examples(SAMPLE_HELDOUT)}
    assert all(p.prompt_key() in trained and p.prompt_key() not in held_out for p in pairs)
