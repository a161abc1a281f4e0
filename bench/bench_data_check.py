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

Each figure is the best of three runs.

Then long documents (continued pretraining data, goal: >= 5 MB/s and <= 1 GB), generated on the
fly and each checked in a fresh process so that its peak resident memory (tokenizer included)
is its own, beside the chat records checked the same way:

  chat       the 100k chat records above
  documents  100 text records of about 150k tokens each (~29 MB)
  5 MB       one text record of 5 MB
  50 MB      one text record of 50 MB: above the 10 MiB limit, an error naming its line

Run: PYTHONPATH=. python bench/bench_data_check.py [--records N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
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


# Pieces of sentences that a generator strings together into long documents, Japanese and English.
PHRASES = ["日本の山は", "富士山の高さは", "東京の人口は", "この章では", "川の流れは", "古い寺の", "新しい駅の",
           "The river", "A short report on", "The committee", "Chapter", "In the spring of", "The engine"]
ENDINGS = ["とても高いです。", "約{n}メートルです。", "毎年{n}人が訪れます。", "静かで美しい。",
           " was measured at {n} metres.", " describes section {n} in detail.", " met {n} times that year."]


def write_document(handle, rng: random.Random, size: int) -> None:
    """One text record of about `size` bytes of varied sentences, paragraphs of a few lines."""
    written, lines = 0, []
    while written < size:
        line = "".join(rng.choice(PHRASES) + rng.choice(ENDINGS).format(n=rng.randrange(10_000)) for _ in range(4))
        lines.append(line)
        written += len(line.encode()) + 1
    handle.write(json.dumps({"text": "\n".join(lines)}, ensure_ascii=False) + "\n")


def write_documents(path: Path, count: int, size: int) -> int:
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(count):
            write_document(handle, rng, size)
    return path.stat().st_size


def check_alone(path: Path, threads: bool) -> dict:
    """check_file on `path` with the default tokenizer in a fresh process: time, peak memory, outcome.
    Without `threads`, tokenizers encodes each batch on one thread instead of its thread pool."""
    env = {**os.environ, **({} if threads else {"TOKENIZERS_PARALLELISM": "false"})}
    done = subprocess.run([sys.executable, __file__, "--one", str(path)], capture_output=True, text=True,
                          check=True, env=env)
    return json.loads(done.stdout.splitlines()[-1])


def memory_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (the peak since the last reset) of this process."""
    return int(Path("/proc/self/status").read_text().split(field + ":")[1].split()[0]) / 1024


def one(path: Path) -> None:
    config = ModelConfig()
    tokenizer = load_tokenizer(model_folder(config, Home.from_env()), config)
    before = memory_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak starts here (ru_maxrss starts at the parent's)
    start, cpu = time.perf_counter(), time.process_time()
    report = check_file(path, tokenizer=tokenizer)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "before_mib": before, "peak_mib": memory_mib("VmHWM"),
                      "errors": [example for f in report.errors for example in f.examples],
                      "tokens": report.lengths.total if report.lengths else None,
                      "windows": report.lengths.windows if report.lengths else None}))


def long_documents(tmp: Path, chat: Path) -> None:
    cases, goals = [("chat", chat, True)], []
    for label, count, size in (("documents", 100, 290_000), ("5 MB", 1, 5_000_000), ("50 MB", 1, 50_000_000)):
        path = tmp / f"{label.replace(' ', '')}.jsonl"
        write_documents(path, count, size)
        cases.append((label, path, True))
    cases.append(("docs, 1 thread", cases[1][1], False))  # tokenizers' thread pool off
    print(f"\nlong documents: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'case':<14} {'MB':>6} {'seconds':>8} {'MB/s':>6} {'MB/CPU-s':>9} {'peak MiB (tokenizer loaded)':>28}  outcome")
    for label, path, threads in cases:
        result, megabytes = check_alone(path, threads), path.stat().st_size / 1e6
        outcome = "; ".join(result["errors"]) or (f"{result['tokens']:,} tokens"
                                                  + (f", {result['windows']:,} windows" if result["windows"] else ""))
        print(f"{label:<14} {megabytes:>6.1f} {result['seconds']:>8.2f} {megabytes / result['seconds']:>6.1f} "
              f"{megabytes / result['cpu_seconds']:>9.1f} {result['peak_mib']:>14,.0f} ({result['before_mib']:,.0f}){'':>7}"
              f"  {outcome}")
        if label in ("documents", "5 MB"):
            rate, peak = megabytes / result["seconds"], result["peak_mib"]
            goals.append(f"goal >= 5 MB/s and <= 1 GB, {label}: "
                         f"{'met' if rate >= 5 and peak <= 1024 else 'NOT met'} ({rate:.1f} MB/s, {peak:,.0f} MiB)")
    print("\n".join(goals))


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
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # check one file in this process
    args = parser.parse_args()
    if args.one:
        return one(args.one)
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
        long_documents(Path(tmp), path)
    for label, rate in (("`tanren data check` (token checks included, the default)", tokens),
                        ("`tanren data check --no-tokens`", structure)):
        print(f"goal >= 50,000 records/s, {label}: {'met' if rate >= 50_000 else 'NOT met'} ({rate:,.0f})")


if __name__ == "__main__":
    main()
