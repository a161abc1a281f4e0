"""The tokenizer part of a GGUF file: tokens, types, merges, pre-tokenizer, special tokens, template.

llama.cpp re-implements each Hugging Face pre-tokenizer under a name (`tokenizer.ggml.pre`);
a wrong name makes it split text differently from the model's training, and the model then
answers worse without any error. llama.cpp's converter guesses the name from a hash of one
test string's token ids, which only knows published vocabularies; a tokenizer we trained or
extended would not match. We read the pre-tokenizer's structure from tokenizer.json instead and
accept only the structures whose llama.cpp twin is known, refusing anything else.

SentencePiece BPE tokenizers (Llama 2, Mistral v0.x; byte fallback, "▁" for spaces) go to
llama.cpp's own "llama" vocabulary, which needs a score per token instead of a merge list.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from engine.errors import ExportError

_BYTE_LEVEL_GPT2 = ("byte_level", "gpt2_regex")
_BYTE_LEVEL_RAW = ("byte_level", "no_regex")
_DIGITS = ("digits", "individual")
QWEN2_SPLIT_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPLIT_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# (pre-tokenizer steps, BPE ignore_merges) -> llama.cpp's name for the same splitting
_PRE_TOKENIZERS: dict[tuple[tuple[tuple[str, str], ...], bool], str] = {
    ((_BYTE_LEVEL_GPT2,), False): "gpt-2",
    ((_DIGITS, _BYTE_LEVEL_GPT2), False): "smollm",  # SmolLM, SmolLM2, StarCoder
    ((("split", QWEN2_SPLIT_REGEX), _BYTE_LEVEL_RAW), False): "qwen2",
    ((("split", LLAMA3_SPLIT_REGEX), _BYTE_LEVEL_RAW), True): "llama-bpe",  # Llama 3.x
}
_LOOKS_SPECIAL = ("<|", "<｜", "<unused")


def add_tokenizer(writer, folder: Path, *, vocab_size: int) -> None:
    """Write the tokenizer of the HF folder `folder` into `writer` (a gguf.GGUFWriter)."""
    import gguf

    tokenizer_json = _read_tokenizer_json(folder)
    if is_sentencepiece_bpe(tokenizer_json):
        return _add_sentencepiece_bpe(writer, folder, tokenizer_json, vocab_size=vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer_name(tokenizer_json, folder))
    tokenizer = _load_tokenizer(folder)
    tokens, types = _tokens_and_types(tokenizer, vocab_size, folder)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=vocab_size)
    if not special.merges:
        raise ExportError("tokenizer.json has no BPE merges", where=str(Path(folder) / "tokenizer.json"))
    special.add_special_token.update(_adds_bos_eos(tokenizer))
    special.add_to_gguf(writer, quiet=True)


def is_sentencepiece_bpe(tokenizer_json: dict[str, Any]) -> bool:
    """The HF form of a SentencePiece BPE model (Llama 2, Mistral v0.1-v0.3): BPE over "▁"-escaped
    text, with bytes as <0xXX> tokens for characters outside the vocabulary."""
    model = tokenizer_json.get("model") or {}
    return model.get("type") == "BPE" and bool(model.get("byte_fallback"))


def _add_sentencepiece_bpe(writer, folder: Path, tokenizer_json: dict[str, Any], *, vocab_size: int) -> None:
    """llama.cpp's "llama" tokenizer merges the adjacent pair whose joined token scores highest,
    so each token scores minus the rank of the first merge that makes it: the same merges, in
    the same order, as the HF tokenizer's."""
    import gguf

    tokenizer = _load_tokenizer(folder)
    tokens, types = _tokens_and_types(tokenizer, vocab_size, folder)
    byte_token = re.compile(r"<0x[0-9A-F]{2}>")
    types = [gguf.TokenType.BYTE if byte_token.fullmatch(token) else kind for token, kind in zip(tokens, types)]
    if tokenizer.unk_token_id is not None:
        types[tokenizer.unk_token_id] = gguf.TokenType.UNKNOWN
    scores = [0.0] * len(tokens)
    index = {token: token_id for token_id, token in enumerate(tokens)}
    for rank, merge in enumerate(tokenizer_json["model"].get("merges") or []):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        token_id = index.get(left + right)
        if token_id is not None and scores[token_id] == 0.0:
            scores[token_id] = -float(rank + 1)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_add_space_prefix(_prepends_space(tokenizer_json))
    special = gguf.SpecialVocab(folder, load_merges=False, n_vocab=vocab_size)
    special.add_special_token.update(_adds_bos_eos(tokenizer))
    special.add_to_gguf(writer, quiet=True)


def _prepends_space(tokenizer_json: dict[str, Any]) -> bool:
    """Whether the text gets a leading "▁" (Llama 2's normalizer, or a Metaspace pre-tokenizer)."""
    text = json.dumps([tokenizer_json.get("normalizer"), tokenizer_json.get("pre_tokenizer")])
    return '"Prepend"' in text or '"prepend_scheme": "always"' in text or '"prepend_scheme": "first"' in text


def pre_tokenizer_name(tokenizer_json: dict[str, Any], folder: Path) -> str:
    model = tokenizer_json.get("model") or {}
    where = str(Path(folder) / "tokenizer.json")
    decoder = (tokenizer_json.get("decoder") or {}).get("type")
    if model.get("type") != "BPE" or model.get("byte_fallback") or decoder != "ByteLevel":
        raise ExportError(
            "GGUF export supports byte-level BPE tokenizers (GPT-2 style, as in SmolLM2, Qwen2 "
            "and Llama 3) and SentencePiece BPE ones with byte fallback (Llama 2, Mistral); this tokenizer is of "
            "another kind (e.g. Unigram or WordPiece)",
            where=where, hint="export the merged model with transformers instead, or use a byte-level BPE base",
        )
    steps = _pre_tokenizer_steps(tokenizer_json.get("pre_tokenizer"), where)
    name = _PRE_TOKENIZERS.get((steps, bool(model.get("ignore_merges", False))))
    if name is None:
        raise ExportError(
            f"llama.cpp has no known equivalent of this tokenizer's pre-tokenizer {json.dumps(steps)[:200]}",
            where=where, hint="known: " + ", ".join(sorted(set(_PRE_TOKENIZERS.values()))),
        )
    return name


def _pre_tokenizer_steps(node: dict[str, Any] | None, where: str) -> tuple[tuple[str, str], ...]:
    if node is None:
        return ()
    kind = node.get("type")
    if kind == "Sequence":
        return tuple(step for child in node.get("pretokenizers", []) for step in _pre_tokenizer_steps(child, where))
    if kind == "ByteLevel" and not node.get("add_prefix_space", False):
        return (_BYTE_LEVEL_GPT2 if node.get("use_regex", True) else _BYTE_LEVEL_RAW,)
    if kind == "Digits" and node.get("individual_digits"):
        return (_DIGITS,)
    if kind == "Split" and node.get("behavior") == "Isolated" and not node.get("invert"):
        regex = (node.get("pattern") or {}).get("Regex")
        if isinstance(regex, str):
            # some files hold the regex escapes \r \n as the characters themselves
            return (("split", regex.replace("\r", r"\r").replace("\n", r"\n")),)
    raise ExportError(f"llama.cpp has no known equivalent of the pre-tokenizer step {json.dumps(node)[:200]}",
                      where=where)


def _read_tokenizer_json(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        raise ExportError(f"{folder} has no tokenizer.json", where=str(folder),
                          hint="save the tokenizer next to the model (tokenizer.save_pretrained)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"tokenizer.json cannot be read: {exc}", where=str(path)) from None


def _load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, KeyError) as exc:
        raise ExportError(f"transformers cannot load the tokenizer: {exc}", where=str(folder)) from None


def _tokens_and_types(tokenizer, vocab_size: int, folder: Path) -> tuple[list[str], list[int]]:
    """One entry per model row; rows the tokenizer does not use become unused padding tokens."""
    import gguf

    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise ExportError(f"the tokenizer has ids up to {max(vocab.values())} but the model only {vocab_size} rows",
                          where=str(Path(folder) / "config.json"), hint="the tokenizer does not belong to this model")
    by_id = {token_id: token for token, token_id in vocab.items()}
    added = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for token_id in range(vocab_size):
        if token_id not in by_id:
            tokens.append(f"[PAD{token_id}]")
            types.append(gguf.TokenType.UNUSED)
        elif token_id in added:
            # llama.cpp matches added tokens against raw text, so they are stored undecoded
            entry = added[token_id]
            tokens.append(entry.content)
            special = entry.special or entry.content.startswith(_LOOKS_SPECIAL)
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[token_id])
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _adds_bos_eos(tokenizer) -> dict[str, bool]:
    """Whether encoding adds BOS/EOS, observed rather than read from one of several config places."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    return {
        "bos": bos is not None and len(full) > len(plain) and full[0] == bos,
        "eos": eos is not None and len(full) > len(plain) and full[-1] == eos,
    }
