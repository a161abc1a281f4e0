"""Quantizing with llama.cpp's own quantizer: every type loads and still computes the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import ExportError
from export.gguf import write_gguf
from export.quantize import QUANT_TYPES, quantize_gguf
from tests.llama_cpp_runner import llama_logits
from tests.tiny_model import build_tiny_model

# llama.cpp's LLAMA_FTYPE_* number, the type of most matrices, and how closely the logits must
# still follow the F16 file's (correlation) for a random model
EXPECTED = {
    "q8_0": (7, "Q8_0", 0.999),
    "q6_k": (18, "Q6_K", 0.995),
    "q5_k_m": (17, "Q5_K", 0.99),
    "q4_k_m": (15, "Q4_K", 0.97),
    "q4_0": (2, "Q4_0", 0.97),
}
IDS = [1, 75, 76, 40, 200, 31, 7, 300, 41, 2, 1, 99, 120, 5, 64, 250, 33, 17]


def _file_type_and_tensor_types(path: Path) -> tuple[int, set[str]]:
    from gguf import GGUFReader

    reader = GGUFReader(path)
    return int(reader.get_field("general.file_type").contents()), {t.tensor_type.name for t in reader.tensors}


@pytest.fixture(scope="module")
def f16_256(gguf_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """K-quants work on rows of 256 values, so this tiny model is 256 wide (the default is 64)."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("wide")
    model = build_tiny_model(folder / "model", tokenizer=AutoTokenizer.from_pretrained(gguf_model_dir),
                             hidden_size=256, intermediate_size=512)
    return write_gguf(model, folder / "model-f16.gguf")


@pytest.mark.parametrize("quant", QUANT_TYPES)
def test_each_quant_type_loads_and_follows_the_f16_model(quant: str, f16_256: Path, tmp_path: Path) -> None:
    out = quantize_gguf(f16_256, tmp_path / f"model-{quant}.gguf", quant, threads=2)
    file_type, tensor_types = _file_type_and_tensor_types(out)
    expected_file_type, main_type, correlation = EXPECTED[quant]
    assert file_type == expected_file_type
    assert main_type in tensor_types
    assert out.stat().st_size < f16_256.stat().st_size
    reference, got = llama_logits(f16_256, IDS), llama_logits(out, IDS)
    assert np.isfinite(got).all()
    assert np.corrcoef(got.ravel(), reference.ravel())[0, 1] > correlation
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_narrow_models_fall_back_to_types_their_rows_allow(gguf_model_dir: Path, tmp_path: Path) -> None:
    """Rows of 64 values cannot hold K-quant blocks; llama.cpp picks another type per tensor."""
    f16 = write_gguf(gguf_model_dir, tmp_path / "tiny-f16.gguf")
    out = quantize_gguf(f16, tmp_path / "tiny-q4_k_m.gguf", "Q4_K_M")
    _file_type, tensor_types = _file_type_and_tensor_types(out)
    assert "Q4_K" not in tensor_types
    ids = IDS[:8]
    assert np.corrcoef(llama_logits(out, ids).ravel(), llama_logits(f16, ids).ravel())[0, 1] > 0.95


def test_unknown_quant_type_lists_the_known_ones(f16_256: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError) as caught:
        quantize_gguf(f16_256, tmp_path / "m.gguf", "q3_k_xl")
    assert all(name in caught.value.hint for name in QUANT_TYPES)


def test_missing_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        quantize_gguf(tmp_path / "absent.gguf", tmp_path / "m.gguf", "q8_0")


def test_overwriting_the_source_is_refused(f16_256: Path) -> None:
    with pytest.raises(ExportError, match="overwrite"):
        quantize_gguf(f16_256, f16_256, "q8_0")


def test_a_file_llama_cpp_cannot_read_fails_clearly_and_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "broken.gguf"
    source.write_bytes(b"GGUF" + bytes(200))
    out_folder = tmp_path / "out"
    with pytest.raises(ExportError) as caught:
        quantize_gguf(source, out_folder / "m.gguf", "q4_k_m")
    assert "llama.cpp could not quantize broken.gguf" in caught.value.message
    assert list(out_folder.iterdir()) == []
