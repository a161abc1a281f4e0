"""One prompt format for every backend: the model's own chat template, rendered by one renderer.

Both backends render the template with transformers' Jinja renderer (the one behind
`apply_chat_template`) and then tokenize the text with special tokens parsed and no BOS added:
the template alone decides where BOS goes, exactly as `apply_chat_template(tokenize=True)`
does, so a BOS is never doubled by a tokenizer that also adds one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from engine.errors import TanrenError
from engine.messages import Message, as_dicts
from engine.phrases import phrase

# End-of-turn markers of the common chat formats. A model stops at its EOS ids and at any of
# these that its vocabulary holds as one token (ChatML, Llama 3, Gemma, Phi-3, plain GPT-2).
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end_of_turn|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")


def render_chat(template: str | None, messages: Sequence[Message], *, special_tokens: dict[str, str],
                model: str, add_generation_prompt: bool = True) -> str:
    """The prompt text for `messages`, ending with the header that starts the assistant's turn
    (or, without the generation prompt, the conversation as it is, e.g. to score it)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    if not template:
        raise TanrenError(
            phrase("{model} has no chat template, so there is no way to know how it expects a conversation",
                   model=model),
            where=model, hint=phrase("chat with an instruct (chat) model, or an adapter trained with a chat template"),
        )
    try:
        rendered, _ = render_jinja_template(
            conversations=[as_dicts(messages)], chat_template=template, add_generation_prompt=add_generation_prompt,
            **special_tokens,
        )
    except Exception as exc:  # templates raise their own errors, e.g. "roles must alternate"
        raise TanrenError(phrase("{model}'s chat template rejected the conversation: {why}", model=model, why=exc),
                          where=model) from None
    return rendered[0]


def stop_token_ids(eos_ids: Iterable[int | None], token_id: Callable[[str], int | None]) -> frozenset[int]:
    """EOS ids plus every end-of-turn marker the vocabulary has (`token_id` maps text to one id)."""
    ids = {i for i in eos_ids if isinstance(i, int) and i >= 0}
    for text in END_OF_TURN_TOKENS:
        found = token_id(text)
        if found is not None:
            ids.add(found)
    return frozenset(ids)

