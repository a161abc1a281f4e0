"""Write a Hugging Face model folder (merged, full precision) as one F16/BF16/F32 GGUF file, with
llama.cpp's own converter.

The converter knows every architecture llama.cpp runs: tensor names and layouts,
hyperparameters, the tokenizer with its pre-tokenizer, special tokens and the chat template.
It runs as a child process and writes to a temporary name; the file appears only complete.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import ExportError
from engine.models.tokenizer_files import SENTENCEPIECE_MODEL
from engine.phrases import phrase
from export.converter_process import OnLog, OnProgress, run_converter
from export.converters import installed_converters
from export.json_files import NOT_A_MODEL_FOLDER, read_folder_json
from export.output import artifact_file
from export.safetensors_files import model_safetensors_files, parameter_count, safetensors_index

__all__ = ["GGUF_DTYPES", "check_architecture", "write_gguf"]

GGUF_DTYPES = ("f16", "bf16", "f32")
_BYTES_PER_VALUE = {"f16": 2, "bf16": 2, "f32": 4}
_TOKENIZER_FILES = ("tokenizer.json", SENTENCEPIECE_MODEL)
_METADATA_BYTES = 64 << 20  # vocabulary, merges and chat template; generous for 256k-token vocabularies


def write_gguf(hf_folder: Path, out: Path, *, dtype: str = "f16", on_progress: OnProgress | None = None,
               on_log: OnLog | None = None) -> Path:
    """Convert `hf_folder` (a causal LM with its tokenizer) into the GGUF file `out`.

    `dtype` (f16, bf16 or f32) applies to matrices; the converter keeps norms and biases in
    F32. Raises ExportError for unsupported or incomplete models and failed writes.
    """
    check_dtype(dtype)
    folder = Path(hf_folder)
    converters = installed_converters()
    check_architecture(folder, converters.architectures())
    _check_tokenizer(folder)
    _check_floating_point(folder)
    expected = parameter_count(folder) * _BYTES_PER_VALUE[dtype] + _METADATA_BYTES
    with artifact_file(Path(out), expected_bytes=expected) as tmp:
        run_converter(converters.hf_script, [str(folder.resolve()), "--outfile", str(tmp), "--outtype", dtype],
                      on_progress=on_progress, on_log=on_log)
    return Path(out)


def _check_tokenizer(folder: Path) -> None:
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise ExportError(phrase("{folder} has no tokenizer ({first} or {second})", folder=folder,
                                 first=_TOKENIZER_FILES[0], second=_TOKENIZER_FILES[1]),
                          where=str(folder), hint=phrase("save the tokenizer next to the model (tokenizer.save_pretrained)"))
    if _is_sentencepiece_bpe(folder) and not (folder / SENTENCEPIECE_MODEL).is_file():
        # Without it the converter gives every token the same score, and llama.cpp then merges
        # the pieces in another order than the model was trained with.
        raise ExportError(phrase("{folder} has a SentencePiece tokenizer but no {file}, which llama.cpp's converter "
                                 "needs to tokenize as the model does", folder=folder, file=SENTENCEPIECE_MODEL),
                          where=str(folder), hint=phrase("copy {file} from the base model's folder or repository into it",
                                                         file=SENTENCEPIECE_MODEL))


def _is_sentencepiece_bpe(folder: Path) -> bool:
    """The HF form of a SentencePiece BPE model (Llama 2, Mistral v0.x, Gemma, Phi-3): BPE with bytes
    as <0xXX> tokens for characters outside the vocabulary."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return False
    tokenizer = read_folder_json(folder, "tokenizer.json", missing=phrase("it has no tokenizer"),
                                 hint=phrase("save the tokenizer again"))
    model = tokenizer.get("model") if isinstance(tokenizer, dict) else None
    return isinstance(model, dict) and model.get("type") == "BPE" and bool(model.get("byte_fallback"))


def _check_floating_point(folder: Path) -> None:
    """Refuse integer-stored matrices: a quantized model (bitsandbytes, GPTQ) would be converted as
    if its packed integers were weights."""
    for name, (path, shape, stored) in safetensors_index(model_safetensors_files(folder)).items():
        if len(shape) == 2 and not stored.startswith(("F", "BF")):
            raise ExportError(phrase("{name} is stored as {dtype}, not as floating point", name=name, dtype=stored),
                              where=str(path), hint=phrase("export a merged full-precision model, not a quantized one"))


def check_dtype(dtype: str) -> None:
    if dtype not in GGUF_DTYPES:
        raise ExportError(phrase("unknown GGUF dtype {dtype!r}", dtype=dtype),
                          hint=phrase("choose one of {choices}", choices=", ".join(GGUF_DTYPES)))


def check_architecture(folder: Path, supported: tuple[str, ...]) -> str:
    """The model's architecture, if llama.cpp's converter knows it; else one clear error."""
    config = read_folder_json(folder, "config.json", missing=NOT_A_MODEL_FOLDER,
                              hint=phrase("export the merged model folder (it holds config.json)"))
    names = config.get("architectures") if isinstance(config, dict) else None
    if not names:
        raise ExportError(phrase("config.json does not name the model's architecture"),
                          where=str(folder / "config.json"),
                          hint=phrase('save the model with transformers, which writes "architectures"'))
    if names[0] not in supported:
        raise ExportError(phrase("llama.cpp cannot run {architecture} yet: its converter does not know this "
                                 "architecture", architecture=names[0]),
                          where=str(folder / "config.json"),
                          hint=phrase("`tanren export --architectures` lists what it converts; chat with the HF model "
                                      "in tanren instead, or wait for a llama.cpp release that adds it"))
    return names[0]
