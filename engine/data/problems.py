"""Every problem the data doctor can report: its severity, a title and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"
SHOWN = 5  # examples listed per problem in a report


@dataclass(frozen=True)
class ProblemKind:
    severity: str
    title: str
    hint: str | None = None


KINDS: dict[str, ProblemKind] = {
    "empty-file": ProblemKind(ERROR, "the file holds no records", "add at least one record"),
    "not-utf8": ProblemKind(ERROR, "text is not UTF-8", "convert the file to UTF-8 (see the command above)"),
    "invalid-json": ProblemKind(
        ERROR, "invalid JSON", "fix the JSON at that line; in a .jsonl file each line is one complete JSON object"
    ),
    "malformed-csv": ProblemKind(ERROR, "malformed CSV row", "quote fields that contain commas, quotes or line breaks"),
    "unknown-format": ProblemKind(
        ERROR, "record format not recognized",
        "records need `text`, `instruction`+`output`, `instruction`+`response`, `conversations` or "
        "`messages`; preference records `prompt`+`chosen`+`rejected`, `chosen`+`rejected` or "
        "`prompt`+`completion`+`label`; or pass --format",
    ),
    "missing-field": ProblemKind(
        ERROR, "missing required field", "every record needs the fields of the file's format (see the format above)"
    ),
    "empty-field": ProblemKind(ERROR, "empty required field", "fill in these fields or remove the records"),
    "wrong-type": ProblemKind(
        ERROR, "wrong type", "field values are text (JSON strings); conversations are lists of turn objects"
    ),
    "unknown-role": ProblemKind(
        ERROR, "unknown role",
        "use system, user or assistant (ShareGPT: system, human or gpt); tool calls are not supported",
    ),
    "no-assistant": ProblemKind(
        ERROR, "conversation without an assistant reply",
        "every conversation needs an assistant turn after a user turn; that is what the model learns",
    ),
    "bad-prompt": ProblemKind(
        ERROR, "prompt does not end with the user's turn",
        "the prompt is the conversation up to the user's last message; the answers go in chosen and rejected "
        "(or completion)",
    ),
    "same-answers": ProblemKind(
        ERROR, "chosen identical to rejected",
        "a pair teaches only through the difference between its answers; fix these pairs or remove them",
    ),
    "prompt-mismatch": ProblemKind(
        ERROR, "chosen and rejected answer different prompts",
        "both conversations must hold the same turns up to their last answer; only that answer may differ",
    ),
    "bad-label": ProblemKind(
        ERROR, "KTO label is not true or false",
        "write each label as a JSON boolean: true for a desirable completion, false for an undesirable one",
    ),
    "other-kind": ProblemKind(
        ERROR, "the validation file holds another kind of data than the training file",
        "give a validation file of the same kind: SFT records, preference pairs or KTO ratings",
    ),
    "too-large": ProblemKind(
        ERROR, "record too large",
        "split the document into records of at most 10 MiB (a chapter or section each); long text records "
        "become training windows all the same",
    ),
    "template-error": ProblemKind(
        ERROR, "the base model's chat template cannot render the example",
        "some templates refuse system turns or require user and assistant turns to alternate; "
        "change these records or use another --base",
    ),
    "duplicate": ProblemKind(WARNING, "duplicate example", "duplicates over-weight an example; remove them"),
    "short-output": ProblemKind(WARNING, "very short output", "check that the responses are not truncated"),
    "too-long": ProblemKind(
        WARNING, "longer than max_length",
        "raise --max-length (data.max_length) or shorten these examples; the cut tokens are not trained",
    ),
    "personal-data": ProblemKind(
        WARNING, "looks like personal data", "remove or anonymize personal data before training"
    ),
    "low-diversity": ProblemKind(
        WARNING, "low diversity", "many identical responses teach the model to repeat them; vary them"
    ),
    "one-label": ProblemKind(
        WARNING, "every KTO label is the same",
        "KTO learns from desirable (true) and undesirable (false) completions side by side; add the other kind",
    ),
    "kto-batch": ProblemKind(
        WARNING, "micro-batches too small for KTO's KL term",
        "KTO estimates its KL term from the other completions of each micro-batch (trl refuses micro-batches "
        "of one); train with --batch-size 2 or more (training.micro_batch_size)",
    ),
    "leakage": ProblemKind(
        WARNING, "validation example also in training data",
        "remove these from one of the files, or validation loss will look better than it is",
    ),
}


class RecordError(Exception):
    """What is wrong with one record; `code` is a key of KINDS."""

    def __init__(self, code: str, detail: str, *, hint: str | None = None):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.hint = hint if hint is not None else KINDS[code].hint
