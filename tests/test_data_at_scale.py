"""The data doctor on very long records (bounded memory, a size limit), and datasets from the HF cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.data import check_file, load_records
from engine.data.windows import window_count
from engine.errors import DataError
from tests.tiny_model import build_tokenizer

REPO = Path(__file__).resolve().parents[1]
PARAGRAPH = "日本の首都は東京です。The capital of Japan is Tokyo, and it is large.\n"

# Runs in a fresh process so that its peak resident memory is the check's, tokenizer included
# (the tokenizer's Rust allocations are invisible to tracemalloc). The peak (VmHWM) is reset once
# the tokenizer is loaded: ru_maxrss would start at the parent's size, inherited at fork.
CHECK = """
import json, sys
from engine.data import check_file
from tests.tiny_model import build_tokenizer
def kib(field):
    return int(open("/proc/self/status").read().split(field + ":")[1].split()[0])
tokenizer = build_tokenizer()
before = kib("VmRSS")
open("/proc/self/clear_refs", "w").write("5")
report = check_file(sys.argv[1], tokenizer=tokenizer, max_length=1024)
print(json.dumps({"report": report.to_dict(), "before_kib": before, "peak_kib": kib("VmHWM")}))
"""


def test_a_5_mb_record_is_measured_in_bounded_memory_and_one_above_the_limit_is_an_error(tmp_path: Path) -> None:
    five_mb = PARAGRAPH * (5_000_000 // len(PARAGRAPH.encode()))
    path = tmp_path / "long.jsonl"
    path.write_text("\n".join(json.dumps({"text": text}, ensure_ascii=False)
                              for text in (five_mb, PARAGRAPH * 200_000)) + "\n", encoding="utf-8")  # 5 MB, 15 MB
    done = subprocess.run([sys.executable, "-c", CHECK, str(path)], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=True)
    result = json.loads(done.stdout)
    report = result["report"]
    (error,) = [f for f in report["findings"] if f["severity"] == "error"]
    assert error["code"] == "too-large" and error["examples"] == [
        f"{path}:2: 15.4 MiB of text, above the limit of 10 MiB a record"]
    # Tokenizing 5 MB whole takes seconds; the paragraphs tokenize alike, so count one (and check that three add up).
    tokenizer, copies = build_tokenizer(), five_mb.count(PARAGRAPH)
    per = len(tokenizer(PARAGRAPH, add_special_tokens=False)["input_ids"])
    assert len(tokenizer(PARAGRAPH * 3, add_special_tokens=False)["input_ids"]) == 3 * per
    tokens = copies * per + 1  # and EOS
    assert report["lengths"]["max"] == tokens and report["lengths"]["measured"] == 1  # exact; the big one untouched
    assert report["lengths"]["windows"] == window_count(tokens, max_length=1024, stride=1024)
    # Tokenized whole, the 5 MB record alone took over 500 MB more (ids and offsets of 1.4M tokens).
    assert (result["peak_kib"] - result["before_kib"]) < 200 * 1024 and result["peak_kib"] < 1024 * 1024


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An HF hub cache holding the dataset my-org/notes as `hf download --repo-type dataset` leaves it."""
    import datasets.config
    import huggingface_hub.constants
    import pyarrow as pa
    import pyarrow.parquet as pq

    hub = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))  # read once, at import
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")  # where it prepares Arrow
    repo, commit = hub / "datasets--my-org--notes", "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    for split, texts in (("train", ["富士山は日本一高い山です。", "Tokyo is the capital.", ""]), ("test", ["テスト"])):
        folder = repo / "snapshots" / commit / "data"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"text": texts}), folder / f"{split}-00000-of-00001.parquet")
    return hub


def test_a_dataset_in_the_hf_cache_is_read_and_checked_by_record_number(hub_cache: Path) -> None:
    kind, records = load_records("hf:my-org/notes:test")
    assert kind.format == "text" and [r.text for r in records] == ["テスト"] and records[0].source == "hf:my-org/notes:test record 1"
    report = check_file("hf:my-org/notes", tokenizer=build_tokenizer())
    assert report.examples == 2 and report.format == "text"
    (error,) = report.errors
    assert error.code == "empty-field" and error.examples == ("hf:my-org/notes record 3: 'text' is empty",)  # as it was named


def test_an_uncached_dataset_is_one_error_with_the_command_to_fetch_it(hub_cache: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_records("hf:my-org/missing")
    assert "not in the local Hugging Face cache" in caught.value.message
    assert caught.value.hint == "download it first with: hf download --repo-type dataset my-org/missing"
    with pytest.raises(DataError, match="has no split 'validation'") as caught:
        load_records("hf:my-org/notes:validation")
    assert "hf:my-org/notes:train" in caught.value.hint and "hf:my-org/notes:test" in caught.value.hint
