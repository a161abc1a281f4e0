"""ROUGE-1/2/L (rouge-score) between a model's greedy answers and the reference answers.

Tokens (`RougeTokenizer`): text is NFKC-normalized (full-width Ｆｅ and ３７７６ become Fe and
3776, half-width katakana full-width) and lower-cased. Each CJK character - kanji, hiragana,
katakana (with ー and 々), hangul - is one token: Japanese writes no spaces between words, and
character n-grams are the usual unit of ROUGE on Japanese, with no word segmenter to install or
to disagree with. Runs of other letters and digits (English words, numbers) are one token each,
and punctuation and symbols are dropped, as rouge-score's own tokenizer does (which keeps only
a-z and 0-9, so Japanese text would score as empty). No stemming.

Each example's prompt is its conversation up to the last assistant turn, whose text is the
reference. Answers are greedy (reproducible without a seed), through the backend: a batch at a
time with transformers, one by one with llama.cpp. Scores are F-measures averaged over examples.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.chat.backend import ChatBackend
from engine.data import Example
from engine.i18n import N_
from engine.messages import Message
from engine.phrases import phrase
from evals.errors import EvalCancelled, EvalError

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
DEFAULT_BATCH_SIZE = 8

_CJK = ("\u3005-\u3007"  # 々 〆 〇
        "\u3041-\u3096\u309d-\u309f"  # hiragana
        "\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff"  # katakana, ー (not the middle dot ・)
        "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"  # kanji
        "\uac00-\ud7af")  # hangul
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")


class RougeTokenizer:
    """Tokens for ROUGE in any mix of Japanese and English (see the module's docstring)."""

    def tokenize(self, text: str) -> list[str]:
        return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


@dataclass(frozen=True)
class RougeResult:
    rouge1: float
    rouge2: float
    rougeL: float  # noqa: N815 - rouge-score's name
    examples: int


@dataclass(frozen=True)
class Reference:
    prompt: tuple[Message, ...]
    answer: str
    source: str


def references(examples: Sequence[Example]) -> list[Reference]:
    """The prompt and reference answer of each example; an example without one is an error."""
    if not examples:
        raise EvalError(phrase("there are no examples to answer"),
                        hint=phrase("give a data file with at least one example"))
    found = []
    for example in examples:
        messages = example.messages
        last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=None)
        if example.is_text or last is None or not any(m.role == "user" for m in messages[:last]):
            message = (N_("ROUGE needs a reference answer, and this example is raw text") if example.is_text else
                       N_("ROUGE needs a reference answer, and this example has no assistant turn answering a user"))
            raise EvalError(phrase(message), where=example.source, hint=phrase(
                "use chat or instruction data, or measure only perplexity (--metrics perplexity)"))
        if not RougeTokenizer().tokenize(messages[last].content):
            raise EvalError(phrase("the reference answer has no words to compare with"), where=example.source,
                            hint=phrase("remove the example or write its answer"))
        found.append(Reference(tuple(messages[:last]), messages[last].content, example.source))
    return found


def rouge_scores(predictions: Sequence[str], targets: Sequence[str]) -> RougeResult:
    """Mean ROUGE F-measures of each prediction against its target."""
    from rouge_score.rouge_scorer import RougeScorer

    if len(predictions) != len(targets) or not targets:
        raise EvalError(phrase("ROUGE needs one answer per reference ({answers} answers, {references} references)",
                               answers=len(predictions), references=len(targets)))
    scorer = RougeScorer(list(ROUGE_TYPES), tokenizer=RougeTokenizer())
    scores = [scorer.score(target, prediction) for prediction, target in zip(predictions, targets)]
    means = {kind: sum(s[kind].fmeasure for s in scores) / len(scores) for kind in ROUGE_TYPES}
    return RougeResult(**means, examples=len(scores))


def measure_rouge(backend: ChatBackend, examples: Sequence[Example], *, adapter: str | None = None,
                  max_new_tokens: int = 256, batch_size: int = DEFAULT_BATCH_SIZE,
                  progress: Callable[[int, int], None] | None = None,
                  cancel: threading.Event | None = None) -> RougeResult:
    """ROUGE of `backend`'s greedy answers (with `adapter`, or the base) against the references."""
    wanted = references(examples)
    answers: list[str] = []
    for start in range(0, len(wanted), batch_size):
        if cancel is not None and cancel.is_set():
            raise EvalCancelled()
        batch = wanted[start:start + batch_size]
        answers += backend.greedy_answers([ref.prompt for ref in batch], max_new_tokens=max_new_tokens,
                                          adapter=adapter)
        if progress is not None:
            progress(len(answers), len(wanted))
    return rouge_scores(answers, [ref.answer for ref in wanted])
