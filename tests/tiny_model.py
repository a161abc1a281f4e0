"""A tiny random Llama with a real byte-level BPE tokenizer and a ChatML template.

Built locally in about a second, with no downloads, for fast unit tests of everything that
loads, trains or generates. The corpus includes Japanese so multibyte text round-trips.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
CORPUS = [
    "The capital of France is Paris. The capital of Japan is Tokyo.",
    "user assistant system: What is the answer? It is forty-two.",
    "日本の首都は東京です。フランスの首都はパリです。",
    "こんにちは、元気ですか？はい、元気です。ありがとうございます。",
    "Fine-tuning a language model with LoRA adapters on a small dataset.",
]


def build_tokenizer(*, pre_tokenizer=None, ignore_merges: bool = False, corpus: list[str] = CORPUS):
    """The byte-level BPE tokenizer of the tiny model; tests of tokenizer conversion can swap its
    pre-tokenizer (a `tokenizers.pre_tokenizers` object), its merge rule and its training text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    core.pre_tokenizer = pre_tokenizer or pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    core.train_from_iterator(corpus * 20, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<|im_start|>", eos_token="<|im_end|>",
        pad_token="<pad>", unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_sentencepiece_tokenizer(corpus: list[str] = CORPUS):
    """A tokenizer of the kind Llama 2 and Mistral v0.x have in HF form: BPE over "▁"-escaped text
    with a leading "▁", and <0xXX> byte tokens (ordinary vocabulary, as in Llama 2) for characters
    outside the vocabulary; <s> and </s>, BOS added when encoding."""
    import json

    from tokenizers import Tokenizer, decoders, models, normalizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    byte_tokens = [f"<0x{value:02X}>" for value in range(256)]
    core = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    core.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    core.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                      decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>", "<s>", "</s>", *byte_tokens],
                                  show_progress=False)
    core.train_from_iterator(corpus * 20, trainer=trainer)
    spec = json.loads(core.to_str())  # the trainer makes byte tokens added ones; Llama 2 has them in the vocabulary
    spec["added_tokens"] = [token for token in spec["added_tokens"] if not token["content"].startswith("<0x")]
    core = Tokenizer.from_str(json.dumps(spec))
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>", pad_token="</s>")
    tokenizer.chat_template = CHAT_TEMPLATE.replace("<|im_start|>", "<s>").replace("<|im_end|>", "</s>")
    return tokenizer


def build_tiny_model(out: Path, *, seed: int = 0, model_type: str = "llama", tokenizer=None, **config) -> Path:
    """Save a tiny random causal LM; `model_type` (llama, mistral, qwen2...), the tokenizer and
    any config field (hidden_size, rope_scaling...) can be changed for tests that need them."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    tokenizer = tokenizer or build_tokenizer()
    settings = dict(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    model_config = AutoConfig.for_model(model_type, **{**settings, **config})
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(model_config)
    model.generation_config = GenerationConfig(
        bos_token_id=model_config.bos_token_id, eos_token_id=model_config.eos_token_id,
        pad_token_id=model_config.pad_token_id,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def make_adapter(model_dir: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter whose B matrices are random, so (unlike a fresh one) it changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    with torch.random.fork_rng():  # the same adapter for the same seed, whichever tests ran before
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape))
    peft_model.save_pretrained(out)
    return out


def tiny_lora(model_dir: Path, *, dtype=None, four_bit: bool = False, autocast_adapter_dtype: bool = True,
              random_b: bool = False, **lora):
    """A peft LoRA model (r=4, alpha 8, dropout 0.1, every linear layer) on `model_dir`, the same for the
    same arguments; `lora` overrides LoraConfig fields, `random_b` makes B non-zero so the adapter matters."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = dtype or torch.float32
    quantized = {"device_map": {"": "cpu"}, "quantization_config": BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype,
    )} if four_bit else {}
    config = LoraConfig(**{"r": 4, "lora_alpha": 8, "lora_dropout": 0.1, "target_modules": "all-linear", **lora})
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, **quantized)
    model = get_peft_model(base, config, autocast_adapter_dtype=autocast_adapter_dtype)
    if random_b:
        for name, param in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.1)
    return model


def loss_and_grads(model, ids, seed: int):
    """The causal-LM loss on `ids` and the trainable parameters' gradients, dropout drawn from `seed`."""
    import torch

    torch.manual_seed(seed)
    model.zero_grad()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]
