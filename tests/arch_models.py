"""Tiny random causal LMs of the architectures tanren exports, for tests that train, convert and compare them.

Each is saved in a few seconds as an ordinary HF folder, with no downloads. Llama, Mistral, Qwen2 and
Qwen3 take the built-in model's byte-level BPE tokenizer: llama.cpp's converter accepts a BPE tokenizer
only when it knows its pre-tokenizer, and it knows that one (`smollm`). Gemma 3 and Phi-3 get a
SentencePiece tokenizer trained here on English and Japanese, so the converter takes its SentencePiece
path (tokenizer.model) as it does for the real models. All chat in ChatML, with <|im_end|> as EOS.
"""

from __future__ import annotations

from pathlib import Path

from tests.tiny_model import CHAT_TEMPLATE, build_tiny_model

FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma3", "phi3")
SENTENCEPIECE_FAMILIES = ("gemma3", "phi3")
CHATML = ["<|im_start|>", "<|im_end|>"]
# Per family: the HF model type and what its real models have that the defaults of build_tiny_model lack.
ARCHITECTURES = {
    "llama": ("llama", {}),
    "mistral": ("mistral", {"tie_word_embeddings": False, "sliding_window": None}),
    "qwen2": ("qwen2", {}),
    "qwen3": ("qwen3", {"head_dim": 16}),
    # query_pre_attn_scalar = head_dim: llama.cpp scales Gemma 3's attention by 1/sqrt(head_dim)
    "gemma3": ("gemma3_text", {"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 512}),
    "phi3": ("phi3", {"tie_word_embeddings": False, "original_max_position_embeddings": 512}),
}
SENTENCEPIECE_MODEL = "tokenizer.model"
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


def build_arch_model(out: Path, family: str, *, tokenizer_source: Path | None = None, seed: int = 0) -> Path:
    """Save a tiny random model of `family` (one of FAMILIES) in `out`; the BPE families copy the
    tokenizer of `tokenizer_source` (the built-in model's folder)."""
    model_type, config = ARCHITECTURES[family]
    if family in SENTENCEPIECE_FAMILIES:
        tokenizer = sentencepiece_tokenizer(family, out)
    elif tokenizer_source is None:
        raise ValueError(f"{family} takes its tokenizer from tokenizer_source (the built-in model's folder)")
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    build_tiny_model(out, seed=seed, model_type=model_type, tokenizer=tokenizer,
                     **{"vocab_size": _padded_vocab(family, len(tokenizer)), **config})
    (out / "README.md").write_text(MODEL_CARD, encoding="utf-8")
    return out


def _padded_vocab(family: str, size: int) -> int:
    """Phi-3's embeddings have rows past its tokenizer (32064 for 32011 tokens); llama.cpp's
    converter fills them with unused tokens, and tests should meet that too."""
    return -(-size // 64) * 64 if family == "phi3" else size


def sentencepiece_tokenizer(family: str, folder: Path):
    """Train a SentencePiece model into `folder`/tokenizer.model and load it the way the family's real
    tokenizer is: Gemma's (<bos>, no dummy prefix, the ChatML markers in the SentencePiece vocabulary)
    or Phi-3's, which is Llama 2's (<s>, dummy prefix) with its markers added past the vocabulary."""
    from tokenizers import AddedToken

    folder.mkdir(parents=True, exist_ok=True)
    gemma = family == "gemma3"
    ids = (dict(pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>")
           if gemma else dict(unk_id=0, bos_id=1, eos_id=2, pad_id=-1))
    _train_sentencepiece(folder / SENTENCEPIECE_MODEL, add_dummy_prefix=not gemma,
                         control_symbols=CHATML if gemma else [], **ids)
    from tokenizers.models import BPE
    from transformers import GemmaTokenizer, LlamaTokenizer
    from transformers.convert_slow_tokenizer import SentencePieceExtractor

    pieces = SentencePieceExtractor(str(folder / SENTENCEPIECE_MODEL)).extract(BPE)
    vocab = {"vocab": pieces["vocab"], "merges": pieces["merges"], "add_bos_token": True}
    if gemma:
        tokenizer = GemmaTokenizer(**vocab, mask_token=None)
    else:
        tokenizer = LlamaTokenizer(**vocab, legacy=True, add_prefix_space=True)
        _prepend_like_sentencepiece(tokenizer)
    added = CHATML if gemma else ["<|endoftext|>", *CHATML]
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False) for token in added], special_tokens=True)
    tokenizer.pad_token = "<pad>" if gemma else "<|endoftext|>"
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _prepend_like_sentencepiece(tokenizer) -> None:
    """Phi-3's tokenizer.json: "▁" in front of every stretch of text between special tokens, even one that
    starts with a space, as SentencePiece and llama.cpp do (the Metaspace of LlamaTokenizer skips those)."""
    from tokenizers import normalizers

    backend = tokenizer.backend_tokenizer
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.pre_tokenizer = None


def _train_sentencepiece(path: Path, **options) -> None:
    """A BPE SentencePiece model of about 500 pieces, trained as Llama 2's and Gemma's were: byte
    fallback, digits split, no normalization or whitespace folding."""
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
