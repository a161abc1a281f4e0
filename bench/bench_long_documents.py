"""Tokens trained per second on long documents (continued pretraining) against chat data of the same size.

Both train the same LoRA with `tanren train`'s recipe and defaults (run_training) on the same
model, at the same max_length, for --max-steps steps of 4 rows (0: one epoch):

  chat       engine/data/samples/ja_en_chat.jsonl: every conversation one short row
  documents  the same texts (every turn's content, in order) as 8 text records, which become
             windows of max_length tokens

Tokens/s is the rows' tokens the trainer counted (`num_input_tokens_seen`) over the time
trainer.train() took, in wall-clock seconds and in CPU seconds of the process: on a shared
machine the wall clock follows the other load (the same chat run took 8 s and 95 s in one
hour), the CPU time much less. The two take turns for --rounds rounds and each keeps its
fastest. Goal: documents within 10 % of chat's tokens/s.

    PYTHONPATH=. python bench/bench_long_documents.py [--model NAME|FOLDER] [--max-length 256] [--max-steps 0]
                                                      [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from engine.config import RunConfig, apply_overrides
from engine.data import SAMPLE_CHAT, load_examples
from engine.events import EventLog
from engine.paths import Home
from engine.train.recipe import run_training

DOCUMENTS = 8


def write_documents(path: Path) -> Path:
    """The chat sample's texts as DOCUMENTS text records of about equal length."""
    texts = [message.content for example in load_examples(SAMPLE_CHAT) for message in example.messages]
    share = -(-len(texts) // DOCUMENTS)
    with path.open("w", encoding="utf-8") as handle:
        for start in range(0, len(texts), share):
            handle.write(json.dumps({"text": "\n".join(texts[start:start + share])}, ensure_ascii=False) + "\n")
    return path


def timed_train(times: list):
    """Trainer.train, recording (tokens, wall seconds, CPU seconds) of each call into `times`."""
    from transformers import Trainer

    original = Trainer.train

    def train(self, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        result = original(self, *args, **kwargs)
        times.append((self.state.num_input_tokens_seen, time.perf_counter() - wall, time.process_time() - cpu))
        return result

    return train


def train(data: Path, args: argparse.Namespace, folder: Path) -> tuple[int, float, float]:
    """(tokens, wall seconds, CPU seconds) of training on `data`."""
    from transformers import Trainer

    config = apply_overrides(RunConfig(), [
        f"model.base={args.model}", f"data.path={data}", "data.split=1,0,0", f"data.max_length={args.max_length}",
        "training.epochs=1", "training.micro_batch_size=4", "training.gradient_accumulation=1",
        "training.save_steps=100000", "adapter.method=lora", f"training.max_steps={args.max_steps or -1}",
    ])
    events, times, original = EventLog(folder / "events.jsonl"), [], Trainer.train
    Trainer.train = timed_train(times)
    try:
        run_training(config, folder, Home.from_env(), resume=False, should_stop=lambda: False, events=events)
    finally:
        Trainer.train = original
    return times[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--max-steps", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cases = {"chat": SAMPLE_CHAT, "documents": write_documents(Path(tmp) / "documents.jsonl")}
        best: dict[str, tuple[float, float]] = {}  # tokens per wall second, per CPU second
        for round_ in range(args.rounds):
            for name in (list(cases) if round_ % 2 == 0 else list(cases)[::-1]):
                tokens, wall, cpu = train(cases[name], args, Path(tmp) / f"{name}-{round_}")
                print(f"round {round_ + 1}: {name} {tokens:,} tokens, {tokens / wall:.1f} tokens/s "
                      f"({wall:.0f} s), {tokens / cpu:.1f} tokens/CPU-s", flush=True)
                previous = best.get(name, (0.0, 0.0))
                best[name] = (max(previous[0], tokens / wall), max(previous[1], tokens / cpu))
    print(f"{args.model}, max_length {args.max_length}, LoRA, {args.max_steps or 'one epoch of'} steps, "
          f"best of {args.rounds}")
    print(f"{'data':<10} {'tokens/s':>9} {'tokens/CPU-s':>13}")
    for name, (wall, cpu) in best.items():
        print(f"{name:<10} {wall:>9.1f} {cpu:>13.1f}")
    for what, index in (("wall clock", 0), ("CPU time", 1)):
        ratio = best["documents"][index] / best["chat"][index]
        print(f"documents / chat, {what}: {ratio:.2f} (goal >= 0.90: {'met' if ratio >= 0.9 else 'NOT met'})")


if __name__ == "__main__":
    main()
