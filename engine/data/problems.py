"""Every problem the data doctor can report: its severity, a title and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass

from engine.i18n import N_
from engine.phrases import Phrase

ERROR = "error"
WARNING = "warning"
SHOWN = 5  # examples listed per problem in a report


Detail = str | Phrase  # a Phrase, or a library's own text (json's, csv's) shown as it is


@dataclass(frozen=True)
class ProblemKind:
    severity: str
    title: str  # marked N_, as the hint: translated where it is shown
    hint: str | None = None


KINDS: dict[str, ProblemKind] = {
    "empty-file": ProblemKind(
        ERROR, N_("the file holds no records"),
        N_("add at least one record"),
    ),
    "not-utf8": ProblemKind(
        ERROR, N_("text is not UTF-8"),
        N_("convert the file to UTF-8 (see the command above)"),
    ),
    "invalid-json": ProblemKind(
        ERROR, N_("invalid JSON"),
        N_("fix the JSON at that line; in a .jsonl file each line is one complete JSON object"),
    ),
    "malformed-csv": ProblemKind(
        ERROR, N_("malformed CSV row"),
        N_("quote fields that contain commas, quotes or line breaks"),
    ),
    "unknown-format": ProblemKind(
        ERROR, N_("record format not recognized"),
        N_("records need `text`, `instruction`+`output`, `instruction`+`response`, `conversations` or "
           "`messages`; preference records `prompt`+`chosen`+`rejected`, `chosen`+`rejected` or "
           "`prompt`+`completion`+`label`; or pass --format"),
    ),
    "missing-field": ProblemKind(
        ERROR, N_("missing required field"),
        N_("every record needs the fields of the file's format (see the format above)"),
    ),
    "empty-field": ProblemKind(
        ERROR, N_("empty required field"),
        N_("fill in these fields or remove the records"),
    ),
    "wrong-type": ProblemKind(
        ERROR, N_("wrong type"),
        N_("field values are text (JSON strings); conversations are lists of turn objects"),
    ),
    "unknown-role": ProblemKind(
        ERROR, N_("unknown role"),
        N_("use system, user or assistant (ShareGPT: system, human or gpt); tool calls are not supported"),
    ),
    "no-assistant": ProblemKind(
        ERROR, N_("conversation without an assistant reply"),
        N_("every conversation needs an assistant turn after a user turn; that is what the model learns"),
    ),
    "bad-prompt": ProblemKind(
        ERROR, N_("prompt does not end with the user's turn"),
        N_("the prompt is the conversation up to the user's last message; the answers go in chosen and "
           "rejected (or completion)"),
    ),
    "same-answers": ProblemKind(
        ERROR, N_("chosen identical to rejected"),
        N_("a pair teaches only through the difference between its answers; fix these pairs or remove them"),
    ),
    "prompt-mismatch": ProblemKind(
        ERROR, N_("chosen and rejected answer different prompts"),
        N_("both conversations must hold the same turns up to their last answer; only that answer may differ"),
    ),
    "bad-label": ProblemKind(
        ERROR, N_("KTO label is not true or false"),
        N_("write each label as a JSON boolean: true for a desirable completion, false for an undesirable "
           "one"),
    ),
    "other-kind": ProblemKind(
        ERROR, N_("the validation file holds another kind of data than the training file"),
        N_("give a validation file of the same kind: SFT records, preference pairs or KTO ratings"),
    ),
    "too-large": ProblemKind(
        ERROR, N_("record too large"),
        N_("split the document into records of at most 10 MiB (a chapter or section each); long text records"
           " become training windows all the same"),
    ),
    "template-error": ProblemKind(
        ERROR, N_("the base model's chat template cannot render the example"),
        N_("some templates refuse system turns or require user and assistant turns to alternate; change "
           "these records or use another --base"),
    ),
    "duplicate": ProblemKind(
        WARNING, N_("duplicate example"),
        N_("duplicates over-weight an example; remove them"),
    ),
    "short-output": ProblemKind(
        WARNING, N_("very short output"),
        N_("check that the responses are not truncated"),
    ),
    "too-long": ProblemKind(
        WARNING, N_("longer than max_length"),
        N_("raise --max-length (data.max_length) or shorten these examples; the cut tokens are not trained"),
    ),
    "personal-data": ProblemKind(
        WARNING, N_("looks like personal data"),
        N_("remove or anonymize personal data before training"),
    ),
    "low-diversity": ProblemKind(
        WARNING, N_("low diversity"),
        N_("many identical responses teach the model to repeat them; vary them"),
    ),
    "one-label": ProblemKind(
        WARNING, N_("every KTO label is the same"),
        N_("KTO learns from desirable (true) and undesirable (false) completions side by side; add the other"
           " kind"),
    ),
    "kto-batch": ProblemKind(
        WARNING, N_("micro-batches too small for KTO's KL term"),
        N_("KTO estimates its KL term from the other completions of each micro-batch (trl refuses "
           "micro-batches of one); train with --batch-size 2 or more (training.micro_batch_size)"),
    ),
    "leakage": ProblemKind(
        WARNING, N_("validation example also in training data"),
        N_("remove these from one of the files, or validation loss will look better than it is"),
    ),
}


def title(code: str) -> Phrase:
    """The title of a kind of problem, to translate where it is shown."""
    return Phrase(KINDS[code].title)


def kind_hint(code: str) -> Phrase | None:
    hint = KINDS[code].hint
    return None if hint is None else Phrase(hint)


class RecordError(Exception):
    """What is wrong with one record; `code` is a key of KINDS. `detail` and `hint` are Phrases
    (or a library's own text), translated where they are shown; str() of them is the English."""

    def __init__(self, code: str, detail: Detail, *, hint: Detail | None = None):
        super().__init__(str(detail))
        self.code = code
        self.detail = detail
        self.hint = hint if hint is not None else kind_hint(code)
