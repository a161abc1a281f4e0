"""Tiny random causal LMs of the architectures tanren exports, for tests that train, convert and compare them.

Each is saved as an ordinary HF folder in seconds, with no downloads, and converts with llama.cpp's own
converter to a GGUF whose tokens and logits are transformers'. Llama, Mistral and Qwen3 take the built-in
model's byte-level BPE tokenizer: the converter accepts a BPE tokenizer only when it knows its
pre-tokenizer, and it knows that one (`smollm`). Qwen2 takes Qwen2's real tokenizer (see
qwen2_tokenizer). Gemma 3 and Phi-3 get a SentencePiece tokenizer trained here on English and Japanese,
so the converter reads tokenizer.model as it does for the real models. All chat in ChatML, EOS <|im_end|>,
but a Gemma 3 model can chat as Gemma does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.models.tokenizer_files import SENTENCEPIECE_MODEL
from tests.chat_templates import GEMMA3_TEMPLATE
from tests.tiny_model import CHAT_TEMPLATE, build_tiny_model

FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma3", "phi3")
# Per family: the HF model type and what its real models have that the defaults of build_tiny_model lack.
ARCHITECTURES = {
    "llama": ("llama", {}),
    "mistral": ("mistral", {"tie_word_embeddings": False, "sliding_window": None}),
    "qwen2": ("qwen2", {}),
    "qwen3": ("qwen3", {"head_dim": 16}),
    # query_pre_attn_scalar = head_dim: llama.cpp scales Gemma 3's attention by 1/sqrt(head_dim). Both
    # layers slide, as llama.cpp's fixed pattern (5 sliding, 1 global) has it for 2 layers.
    "gemma3": ("gemma3_text", {"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 64}),
    "phi3": ("phi3", {"tie_word_embeddings": False, "original_max_position_embeddings": 512}),
}


@dataclass(frozen=True)
class Chat:
    """How a tiny model chats: its turn markers (the last one ends a turn and is EOS) and template."""

    markers: tuple[str, str]
    template: str


CHATML_CHAT = Chat(("<|im_start|>", "<|im_end|>"), CHAT_TEMPLATE)
GEMMA_CHAT = Chat(("<start_of_turn>", "<end_of_turn>"), GEMMA3_TEMPLATE)
# llama.cpp strips the whitespace after every special token of a model whose GGUF name (general.name) has
# "phi3" in it, as Phi-3's own tokenizer does; the converter takes that name from the model card, else
# from the folder's name, so the card names the model to keep a folder called phi3 ChatML as saved.
MODEL_CARD = "---\nname: tanren tiny random model\n---\n"
CORPUS = [
    "The capital of France is Paris. The capital of Japan is Tokyo.",
    "user assistant system: What is the answer? It is forty-two.",
    "Fine-tuning a language model with LoRA adapters on a small dataset.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Language models learn to predict the next token from the tokens before it.",
    "Mount Fuji is the highest mountain in Japan, at 3776 metres above the sea.",
    "Hello! How are you today? I am fine, thank you. And you?",
    "Please summarize the following text in one sentence, then translate it.",
    "In 2024 the team trained 3 models for 12 hours on 8 GPUs each.",
    "日本の首都は東京です。フランスの首都はパリです。",
    "こんにちは、元気ですか？はい、元気です。ありがとうございます。",
    "東京は日本の首都で、大阪は二番目に大きな都市です。",
    "富士山は日本で一番高い山です。春には桜が咲きます。",
    "私は毎朝コーヒーを飲みます。今日は天気がいいですね。",
    "言語モデルは前のトークンから次のトークンを予測します。",
]


def build_arch_model(out: Path, family: str, *, tokenizer_source: Path | None = None, seed: int = 0,
                     gemma_chat: bool = False) -> Path:
    """Save a tiny random model of `family` (one of FAMILIES) in `out`; llama, mistral and qwen3 copy
    the tokenizer of `tokenizer_source` (the built-in model's folder), the others ignore it. A gemma3
    model with `gemma_chat` chats as Gemma 3 does (<start_of_turn>, <end_of_turn>) instead of in ChatML."""
    model_type, config = ARCHITECTURES[family]
    tokenizer, vocab_size = _tokenizer(family, out, tokenizer_source, GEMMA_CHAT if gemma_chat else CHATML_CHAT)
    build_tiny_model(out, seed=seed, model_type=model_type, tokenizer=tokenizer, vocab_size=vocab_size, **config)
    (out / "README.md").write_text(MODEL_CARD, encoding="utf-8")
    return out


def _tokenizer(family: str, out: Path, source: Path | None, chat: Chat):
    """The family's tokenizer and its model's embedding rows. Real Qwen2 and Phi-3 have rows past the
    tokenizer (151936 for 151646 tokens, 32064 for 32011), which the converter fills with unused tokens."""
    if family == "qwen2":
        return qwen2_tokenizer()
    if family in ("gemma3", "phi3"):
        tokenizer = sentencepiece_tokenizer(family, out, chat)
        return tokenizer, -(-len(tokenizer) // 64) * 64 if family == "phi3" else len(tokenizer)
    if source is None:
        raise ValueError(f"{family} takes its tokenizer from tokenizer_source (the built-in model's folder)")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    return tokenizer, len(tokenizer)


def qwen2_tokenizer():
    """Qwen2's real tokenizer and vocabulary size, from the vocabulary llama.cpp keeps for its tokenizer
    tests (QWEN2_VOCAB, beside the installed converters). transformers 5
    loads the tokenizer of any qwen2 model as Qwen2Tokenizer, whose own pre-tokenizer would split the
    built-in model's vocabulary in a way llama.cpp's converter does not know, and refuses."""
    from gguf import GGUFReader
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    reader = GGUFReader(_installed_qwen2_vocabulary())
    tokens, merges, kinds = (reader.fields[f"tokenizer.ggml.{key}"].contents()
                             for key in ("tokens", "merges", "token_type"))
    normal, control = 1, 3  # llama.cpp's token types; the rest are padding rows
    vocab = {token: i for i, (token, kind) in enumerate(zip(tokens, kinds)) if kind in (normal, control)}
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[tuple(merge.split(" ")) for merge in merges], unk_token=None,
                               eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False)
                          for token, kind in zip(tokens, kinds) if kind == control], special_tokens=True)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer, len(tokens)


def _installed_qwen2_vocabulary() -> Path:
    from export.converters import QWEN2_VOCAB, installed_converters

    path = installed_converters().folder / QWEN2_VOCAB
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the converters' install keeps it from the llama-cpp-python "
                                "source distribution (vendor/llama.cpp/models)")
    return path


def sentencepiece_tokenizer(family: str, folder: Path, chat: Chat = CHATML_CHAT):
    """Train a SentencePiece model into `folder`/tokenizer.model and load it the way the family's real
    tokenizer is: Gemma's (<bos>, no dummy prefix, the ChatML markers in the SentencePiece vocabulary)
    or Phi-3's, which is Llama 2's (<s>, dummy prefix) with its markers added past the vocabulary.
    The markers are control pieces or special added tokens, so the converter marks them as such."""
    from tokenizers import AddedToken
    from tokenizers.models import BPE
    from transformers import GemmaTokenizer, LlamaTokenizer
    from transformers.convert_slow_tokenizer import SentencePieceExtractor

    folder.mkdir(parents=True, exist_ok=True)
    gemma = family == "gemma3"
    ids = (dict(pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>")
           if gemma else dict(unk_id=0, bos_id=1, eos_id=2, pad_id=-1))
    _train_sentencepiece(folder / SENTENCEPIECE_MODEL, add_dummy_prefix=not gemma,
                         control_symbols=list(chat.markers) if gemma else [], **ids)
    pieces = SentencePieceExtractor(str(folder / SENTENCEPIECE_MODEL)).extract(BPE)
    vocab = {"vocab": pieces["vocab"], "merges": pieces["merges"], "add_bos_token": True}
    if gemma:
        tokenizer = GemmaTokenizer(**vocab, mask_token=None)
    else:
        tokenizer = LlamaTokenizer(**vocab, legacy=True, add_prefix_space=True)
        _prepend_like_sentencepiece(tokenizer)
    added = list(chat.markers) if gemma else ["<|endoftext|>", *chat.markers]
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False) for token in added], special_tokens=True)
    tokenizer.pad_token = "<pad>" if gemma else "<|endoftext|>"
    tokenizer.eos_token = chat.markers[1]
    tokenizer.chat_template = chat.template
    return tokenizer


def _prepend_like_sentencepiece(tokenizer) -> None:
    """Phi-3's tokenizer.json: "▁" in front of every stretch of text between special tokens, even one that
    starts with a space, as SentencePiece and llama.cpp do (LlamaTokenizer's Metaspace skips those). A
    phi3 folder's tokenizer loads from tokenizer.json as it is, so this stays."""
    from tokenizers import normalizers

    backend = tokenizer.backend_tokenizer
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.pre_tokenizer = None


def _train_sentencepiece(path: Path, **options) -> None:
    """A BPE SentencePiece model of 500 pieces, trained as Llama 2's and Gemma's were: byte fallback,
    digits split, no normalization or whitespace folding."""
    import io

    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 4), model_writer=model, model_type="bpe", vocab_size=500,
        hard_vocab_limit=False, byte_fallback=True, character_coverage=1.0, split_digits=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
        num_threads=1, minloglevel=2, **options,
    )
    path.write_bytes(model.getvalue())
