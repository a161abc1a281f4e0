"""Render an Example through the base model's chat template into token ids and a loss mask.

The mask marks the tokens that are trained: for a conversation, each assistant turn that
answers a user turn, from its first content token through the template's end-of-turn token
(e.g. `<|im_end|>`, so the model learns to stop); role headers, system and user turns are not
trained. An answer of a preference record (`Example.last_answer_only`) scores only its final
assistant turn: the turns before it are its prompt. Raw text trains on every token and gets EOS
appended.

Assistant turns are located by rendering prefixes of the conversation: turn i spans from the
end of `messages[:i]` rendered with the generation prompt to the end (trailing whitespace
dropped) of `messages[:i+1]`. That works for any template that renders a conversation as its
prefixes followed by more text, which the template must do anyway to be usable for chat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.data.example import Example
from engine.errors import DataError
from engine.events import Said
from engine.messages import Message, as_dicts
from engine.phrases import phrase

# For bases without a chat template: plain headers, and EOS closing each assistant turn.
PLAIN_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '### User:\n' + message['content'] + '\n\n' }}"
    "{% else %}{{ '### Assistant:\n' + message['content'] }}{{ eos_token }}{{ '\n\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\n' }}{% endif %}"
)


RENDER_BATCH = 256  # examples per tokenizer call: most of the speed, little memory


@dataclass(frozen=True)
class Rendered:
    input_ids: list[int]
    assistant_mask: list[int]  # 1 where the token is trained
    truncated_tokens: int  # how many tokens max_length cut off the end


def ensure_chat_template(tokenizer) -> None:
    """Install the plain template on a tokenizer that has none (base models)."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = PLAIN_TEMPLATE


def base_tokenizer(base: str, home, *, on_status: Callable[[Said], None] = lambda _message: None):
    """The tokenizer of a base model (converted on first use), with a chat template for sure;
    only the tokenizer is loaded, never the weights. `on_status` hears the conversion as phrases."""
    from engine.config import ModelConfig
    from engine.models.loading import load_tokenizer, model_folder

    config = ModelConfig(base=base)
    tokenizer = load_tokenizer(model_folder(config, home, on_status=on_status), config)
    ensure_chat_template(tokenizer)
    return tokenizer


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer puts BOS in front of encoded text (Llama does, ChatML models do not)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    return with_special[:1] == [bos] and tokenizer("a", add_special_tokens=False)["input_ids"][:1] != [bos]


def chat_text(tokenizer, messages: Sequence[Message], *, source: str, generation_prompt: bool = False) -> str:
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(
            as_dicts(messages), tokenize=False, add_generation_prompt=generation_prompt
        )
    except (TemplateError, ValueError, TypeError) as exc:
        raise DataError(
            phrase("the chat template of the base model cannot render this example: {error}", error=str(exc)),
            where=source, hint=phrase("some templates refuse system turns or require user and assistant turns to alternate"),
        ) from None


def assistant_spans(tokenizer, messages: Sequence[Message], text: str, *, source: str,
                    last_only: bool = False) -> list[tuple[int, int]]:
    """Character spans of `text` (the rendered conversation) that are trained: every answer, or
    with `last_only` the final turn alone (which must be the assistant's)."""
    spans = []
    seen_user = False
    first = len(messages) - 1 if last_only else 0
    for index, message in enumerate(messages):
        seen_user = seen_user or message.role == "user"
        if message.role != "assistant" or not seen_user or index < first:
            continue  # an opening assistant turn answers nothing; it is context
        head = chat_text(tokenizer, messages[:index], source=source, generation_prompt=True)
        turn = chat_text(tokenizer, messages[: index + 1], source=source)
        if not (text.startswith(head) and text.startswith(turn) and len(head) <= len(turn)):
            raise DataError(
                phrase("the chat template renders this conversation differently from its beginning, so the "
                       "assistant's tokens cannot be told apart"), where=source,
                hint=phrase("set data.assistant_only_loss: false to train on every token"),
            )
        spans.append((len(head), len(turn.rstrip())))
    return spans


def _mask(offsets: Sequence[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """1 for each token whose characters overlap a span."""
    mask, current = [], 0
    for start, end in offsets:
        while current < len(spans) and spans[current][1] <= start:
            current += 1
        mask.append(int(current < len(spans) and spans[current][0] < end))
    return mask


def rendered_text(example: Example, tokenizer) -> str:
    """What render_example tokenizes: the raw text, or the conversation through the chat template."""
    return example.text if example.is_text else chat_text(tokenizer, example.messages, source=example.source)


def frame(tokenizer, first: int | None, *, is_text: bool, add_bos: bool) -> tuple[list[int], list[int]]:
    """The ids that go before and after a rendered text whose first id is `first`: EOS after raw
    text; BOS in front where the tokenizer wants one and the text lacks it (templates such as
    Llama 3's write BOS themselves, so it is never doubled)."""
    after = [tokenizer.eos_token_id] if is_text and tokenizer.eos_token_id is not None else []
    before = [tokenizer.bos_token_id] if add_bos and first != tokenizer.bos_token_id else []
    return before, after


def _framed(tokenizer, ids: list[int], *, is_text: bool, add_bos: bool) -> list[int]:
    before, after = frame(tokenizer, ids[0] if ids else None, is_text=is_text, add_bos=add_bos)
    return [*before, *ids, *after]


def render_example(example: Example, tokenizer, *, max_length: int, assistant_only: bool = True) -> Rendered:
    return render_examples([example], tokenizer, max_length=max_length, assistant_only=assistant_only)[0]


def render_examples(examples: Sequence[Example], tokenizer, *, max_length: int, assistant_only: bool = True,
                    on_error: Callable[[Example, DataError], None] | None = None) -> list[Rendered]:
    """render_example for many examples, with one tokenizer call per batch (several times faster
    than one by one). A DataError stops at the first bad example, or goes to `on_error` and
    the example is left out."""
    add_bos = adds_bos(tokenizer)
    rendered: list[Rendered] = []
    for start in range(0, len(examples), RENDER_BATCH):
        prepared = []  # (example, text, trained character spans or None for all)
        for example in examples[start:start + RENDER_BATCH]:
            try:
                prepared.append(_prepare(example, tokenizer, assistant_only))
            except DataError as error:
                if on_error is None:
                    raise
                on_error(example, error)
        if not prepared:
            continue  # transformers fails on an empty batch
        encoded = tokenizer([text for _, text, _ in prepared], add_special_tokens=False,
                            return_offsets_mapping=assistant_only)
        for index, (example, _, spans) in enumerate(prepared):
            offsets = encoded["offset_mapping"][index] if spans is not None else None
            rendered.append(_finish(example, encoded["input_ids"][index], offsets, spans, tokenizer,
                                    add_bos=add_bos, max_length=max_length))
    return rendered


def _prepare(example: Example, tokenizer, assistant_only: bool) -> tuple[Example, str, list[tuple[int, int]] | None]:
    text = rendered_text(example, tokenizer)
    if example.is_text or not assistant_only:
        return example, text, None
    return example, text, assistant_spans(tokenizer, example.messages, text, source=example.source,
                                          last_only=example.last_answer_only)


def _finish(example: Example, ids: list[int], offsets, spans: list[tuple[int, int]] | None, tokenizer, *,
            add_bos: bool, max_length: int) -> Rendered:
    mask = None if spans is None else _mask(offsets, spans)
    framed = _framed(tokenizer, ids, is_text=example.is_text, add_bos=add_bos)
    # Every token is trained, or the conversation's mask with the added BOS untrained.
    mask = [1] * len(framed) if mask is None else [0] * (len(framed) - len(ids)) + mask
    cut = max(0, len(framed) - max_length)
    return Rendered(framed[:max_length], mask[:max_length], cut)


def trained_segments(tokenizer, rendered: Rendered) -> list[tuple[str, bool]]:
    """The rendered example as decoded text in runs of trained (True) and untrained tokens."""
    ids, mask = rendered.input_ids, rendered.assistant_mask
    segments, start = [], 0
    while start < len(ids):
        end = start
        while end < len(ids) and mask[end] == mask[start]:
            end += 1
        segments.append((tokenizer.decode(ids[start:end], skip_special_tokens=False), bool(mask[start])))
        start = end
    return segments


def rendered_lengths(examples: Sequence[Example], texts: Sequence[str], tokenizer) -> list[int]:
    """How many tokens render_example makes of each example before truncation, from one batch
    encode of their `rendered_text`s (much faster than rendering them one by one)."""
    if not texts:
        return []  # transformers fails on an empty batch
    add_bos = adds_bos(tokenizer)
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [len(_framed(tokenizer, ids, is_text=e.is_text, add_bos=add_bos)) for e, ids in zip(examples, encoded)]
