"""Throughput of `tanren data check` on 100k generated records (goal: >= 50k records/s).

Writes 100k short Japanese/English chat records (messages format, ~200 bytes each, like the
samples) to a temporary JSONL file and times, side by side in one run:

  structure  check_file without a tokenizer: parse, normalize, every error and warning check
             (duplicates, short outputs, personal data, diversity), character lengths
  tokens     the same plus the token checks with the default model's tokenizer: the exact
             over-length check (records past the byte bound are measured exactly) and token
             statistics from a 1,000-example sample
  tokenize   for scale: batch-encoding every record's contents with the fast tokenizer,
             which a check that tokenized everything could not beat
  long       the worst case for the token checks: 10k records of ~1.4 kB checked against
             max_length 256, so every record is past the byte bound and measured exactly

Each figure is the best of three runs. Run: PYTHONPATH=. python bench/bench_data_check.py [--records N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

from engine.config import ModelConfig
from engine.data import check_file, load_examples
from engine.models.loading import load_tokenizer, model_folder
from engine.paths import Home

QUESTIONS = [
    ("日本で一番高い山は何ですか？", "富士山です。標高は3776メートルです。"),
    ("What is the boiling point of water at sea level?", "100 degrees Celsius (212 °F)."),
    ("「ありがとう」を英語で言うと？", "「Thank you」です。"),
    ("How many days are in a leap year?", "A leap year has 366 days."),
    ("光の速さはどのくらいですか？", "真空中で秒速約30万キロメートルです。"),
    ("What does CPU stand for?", "Central Processing Unit."),
]


def write_records(path: Path, count: int, *, repeat: int = 1) -> int:
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(count):
            question, answer = rng.choice(QUESTIONS)
            record = {"messages": [
                {"role": "user", "content": f"{question} (#{i})" * repeat},
                {"role": "assistant", "content": f"{answer} [{i}]" * repeat},
            ]}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path.stat().st_size


def timed(label: str, count: int, run) -> float:
    """Best wall-clock rate of three runs; the CPU-time rate beside it shows what other load costs."""
    best_wall = best_cpu = float("inf")
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        best_wall, best_cpu = min(best_wall, time.perf_counter() - wall), min(best_cpu, time.process_time() - cpu)
    print(f"{label:<10} {count / best_wall:>10,.0f} records/s wall clock ({best_wall:.2f} s), "
          f"{count / best_cpu:,.0f} records/s of CPU time")
    return count / best_wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    config = ModelConfig()
    tokenizer = load_tokenizer(model_folder(config, Home.from_env()), config)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        size = write_records(path, args.records)
        print(f"{args.records:,} records, {size / 1e6:.1f} MB, messages format, JSONL; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        report = check_file(path)  # warm-up, and a sanity check that the data is what we think
        assert report.usable and report.examples == args.records, report.findings
        structure = timed("structure", args.records, lambda: check_file(path))
        tokens = timed("tokens", args.records, lambda: check_file(path, tokenizer=tokenizer))
        contents = [m.content for example in load_examples(path) for m in example.messages]
        timed("tokenize", args.records, lambda: tokenizer.backend_tokenizer.encode_batch_fast(contents))
        long_path = Path(tmp) / "long.jsonl"
        long_records = 10_000
        write_records(long_path, long_records, repeat=16)
        timed("long", long_records, lambda: check_file(long_path, tokenizer=tokenizer, max_length=256))
    for label, rate in (("`tanren data check` (token checks included, the default)", tokens),
                        ("`tanren data check --no-tokens`", structure)):
        print(f"goal >= 50,000 records/s, {label}: {'met' if rate >= 50_000 else 'NOT met'} ({rate:,.0f})")


if __name__ == "__main__":
    main()
