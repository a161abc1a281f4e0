"""Verification verdicts: a GGUF that runs on, or loses too much perplexity, fails the export."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.perplexity import PerplexityResult
from export.gguf import write_gguf
from export.verify import Answer, ModelCheck, stop_like_ollama, judge_gguf

PROMPTS = ("What is the capital of France?", "日本の首都はどこですか？")


def _answers(*stopped: bool) -> tuple[Answer, ...]:
    return tuple(Answer(prompt, "Paris.", 3 if done else 96, done) for prompt, done in zip(PROMPTS, stopped, strict=True))


def _perplexity(value: float) -> PerplexityResult:
    return PerplexityResult(perplexity=value, nll=0.0, tokens=500, examples=10)


MERGED = ModelCheck("merged", _answers(True, False), 10.0, 500, 1.0)


def test_a_gguf_that_runs_on_where_the_merged_model_stopped_fails() -> None:
    check = judge_gguf("f16", _answers(False, False), _perplexity(10.01), [MERGED], True, 1.0)
    assert len(check.failures) == 1
    assert "F16 did not stop within 96 tokens on 'What is the capital of France?'" in str(check.failures[0])
    assert "ramble" in str(check.failures[0])
    # where the merged model ran on too, the GGUF running on is no fault of the file
    assert judge_gguf("f16", _answers(True, False), _perplexity(10.01), [MERGED], True, 1.0).failures == ()


def test_an_end_of_turn_token_llama_cpp_does_not_stop_at_fails() -> None:
    check = judge_gguf("f16", _answers(True, False), _perplexity(10.0), [MERGED], False, 1.0)
    assert check.failures and "does not end generation at the chat format's end-of-turn token" in str(check.failures[0])


@pytest.mark.parametrize(("name", "perplexity", "fails"), [
    ("q8_0", 10.09, False), ("q8_0", 10.15, True), ("q4_k_m", 10.49, False), ("q4_k_m", 10.6, True),
    ("q6_k", 30.0, False),  # other types are reported, not judged
    ("q8_0", float("nan"), True),
])
def test_perplexity_limits_are_relative_to_f16(name, perplexity, fails) -> None:
    f16 = ModelCheck("f16", _answers(True, False), 10.0, 500, 1.0, 2, 0.0, "merged", 0.01)
    check = judge_gguf(name, _answers(True, False), _perplexity(perplexity), [MERGED, f16], True, 1.0)
    assert check.reference == "f16" and bool(check.failures) == fails
    assert check.same_answers == 2


def test_f16_is_held_against_the_merged_model() -> None:
    check = judge_gguf("f16", _answers(True, False), _perplexity(10.2), [MERGED], True, 1.0)
    assert check.reference == "merged" and check.perplexity_delta == pytest.approx(0.02)
    assert "F16 perplexity 10.200 is +2.00% from merged (10.000); at most +1% is allowed" in map(str, check.failures)


def test_failures_are_shown_in_the_readers_language_and_kept_in_english() -> None:
    from engine.i18n import load_catalog
    from export.verify import Verification

    check = judge_gguf("f16", _answers(True, False), _perplexity(10.2), [MERGED], True, 1.0)
    pseudo = load_catalog("pseudo").gettext
    assert check.failures[0].translate(pseudo).startswith("⟦")
    manifest = Verification((MERGED, check), 10, "test").to_json()  # what manifest.json keeps: English text
    assert manifest["failures"] == list(manifest["models"][1]["failures"]) == [str(check.failures[0])]
    assert manifest["failures"][0].startswith("F16 perplexity 10.200")


@pytest.fixture(scope="module")
def tiny_gguf(gguf_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gguf(gguf_model_dir, tmp_path_factory.mktemp("verify") / "tiny-f16.gguf")


def test_the_gguf_stops_only_where_ollama_would(tiny_gguf: Path) -> None:
    from engine.chat.llama_cpp_backend import LlamaCppBackend

    with LlamaCppBackend.load(tiny_gguf) as backend:
        ids = {text: backend.llm.tokenize(text.encode(), add_bos=False, special=True)[0]
               for text in ("<|im_end|>", "<|im_start|>", "<|endoftext|>", "<pad>")}
        assert stop_like_ollama(backend, "<|im_end|>", ["<|im_end|>", "<|im_start|>"])
        # the file's end-of-generation tokens, plus the Modelfile's stops; nothing else
        assert {ids["<|im_end|>"], ids["<|im_start|>"]} <= backend.stop_ids
        assert ids["<pad>"] not in backend.stop_ids
        assert not stop_like_ollama(backend, "<pad>", ["<|im_end|>"])  # <pad> is no end of generation


def _verification(*failing: str):
    from export.verify import Verification

    checks = [MERGED] + [ModelCheck(name, MERGED.answers, 10.0, 500, 1.0, failures=(f"{name} failed",) if name in failing
                                    else ()) for name in ("f16", "q8_0", "q4_k_m")]
    return Verification(tuple(checks), 10, "test")


@pytest.mark.parametrize(("failing", "preferred", "expected"), [
    ((), ("q4_k_m", "q8_0"), ("passed", ("f16", "q8_0", "q4_k_m"), (), "q4_k_m")),
    (("q4_k_m",), ("q4_k_m", "q8_0"), ("passed with exclusions", ("f16", "q8_0"), ("q4_k_m",), "q8_0")),
    (("q8_0", "q4_k_m"), ("q4_k_m", "q8_0"), ("passed with exclusions", ("f16",), ("q8_0", "q4_k_m"), "f16")),
    (("f16",), ("q8_0",), ("failed", (), (), None)),
], ids=["all-pass", "q4-excluded", "only-f16-left", "f16-fails-all"])
def test_the_verdict_publishes_what_passed(failing, preferred, expected) -> None:
    from export.verify import Verdict

    verdict = Verdict.of(_verification(*failing), preferred)
    assert (verdict.status, verdict.passed, verdict.excluded, verdict.runs) == expected


def test_the_model_card_says_how_ollama_shows_a_reasoning_model() -> None:
    from engine.config import RunConfig
    from export.model_card import REASONING_NOTE, CardFile, render_export_card
    from export.verify import Verdict

    verification = _verification()
    verdict = Verdict.of(verification, ("q8_0",))
    files = [CardFile("m-f16.gguf", "f16", 1 << 20), CardFile("m-q8_0.gguf", "q8_0", 1 << 19)]
    card = render_export_card("m", RunConfig(), [], files, verification, verdict, runs_file="m-q8_0.gguf",
                              ollama_name="m", reasoning=True)
    assert REASONING_NOTE in card and "ollama create m -f Modelfile    # runs m-q8_0.gguf" in card
    plain = render_export_card("m", RunConfig(), [], files, verification, verdict, runs_file="m-q8_0.gguf",
                               ollama_name=None, reasoning=True)
    assert REASONING_NOTE not in plain and "ollama" not in plain.split("## Use")[1]
    assert "llama-server --jinja -m m-q8_0.gguf" in plain
