"""Served throughput and latency with 1, 4 and 8 concurrent clients, side by side in one run:

  tanren transformers   `tanren serve` on the built-in model (batched decoding)
  tanren llama.cpp      `tanren serve` on the built-in model's F16 GGUF (one answer at a time)
  llama_cpp.server      llama-cpp-python's own OpenAI server on the same GGUF file, same threads
                        and context (needs its server extras: pip install "tanren[bench]")

Each client sends --requests chat requests one after the other (greedy, --max-tokens each, short
questions from the shipped sample); total tokens/s counts the completion tokens the servers
report over the wall time of the whole load, and latency is each request's, end to end.
Every server runs in its own process, started and stopped by this script, and each load is
preceded by a short one at the same concurrency, so that first-call costs are left out.

    PYTHONPATH=. python bench/bench_serve.py [--requests 3] [--max-tokens 32] [--clients 1,4,8]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SAMPLE = Path(__file__).resolve().parent.parent / "engine" / "data" / "samples" / "ja_en_chat.jsonl"
CONTEXT = 2048


@dataclass(frozen=True)
class Load:
    clients: int
    tokens_per_s: float
    p50_s: float
    p95_s: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def questions() -> list[str]:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [m["content"] for row in rows for m in row.get("messages", []) if m["role"] == "user"][:64]


def serve_child(target: str, port: int) -> None:
    """The tanren server of one variant, in this (child) process until it is terminated."""
    from engine.chat.pool import TargetPool
    from engine.paths import Home
    from engine.serve.app import create_app
    from engine.serve.listen import Listener
    from engine.serve.models import ServedModels, target_spec
    from engine.serve.settings import ServeSettings

    home = Home.from_env()
    settings = ServeSettings(port=port, context=CONTEXT, max_tokens=512)
    models = ServedModels([target_spec(target, home)], TargetPool(home, max_context=CONTEXT), max_batch=settings.max_batch,
                          max_queue=settings.max_queue)
    Listener(create_app(models, settings), settings).run()


def start(variant: str, gguf: Path, port: int, log: Path) -> subprocess.Popen:
    from engine.models.registry import DEFAULT_MODEL

    if variant == "llama_cpp.server":
        threads = str(len(os.sched_getaffinity(0)))  # what tanren's llama.cpp backend uses
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--port", str(port),
                   "--n_ctx", str(CONTEXT), "--n_threads", threads, "--n_threads_batch", threads]
    else:
        target = DEFAULT_MODEL if variant == "tanren transformers" else str(gguf)  # a .gguf goes to llama.cpp
        command = [sys.executable, __file__, "--child", target, str(port)]
    # a file, not a pipe: llama.cpp logs a lot, and a full pipe would block the server
    with open(log, "w", encoding="utf-8") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(process: subprocess.Popen, url: str, log: Path, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server exited ({process.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"the server at {url} did not become ready")


def run_load(url: str, model: str, clients: int, requests: int, max_tokens: int, prompts: list[str]) -> Load:
    import openai

    latencies: list[float] = []
    tokens = [0]
    lock = threading.Lock()

    def client(index: int) -> None:
        api = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=600)
        for n in range(requests):
            prompt = prompts[(index * requests + n) % len(prompts)]
            start = time.perf_counter()
            reply = api.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                                max_tokens=max_tokens, temperature=0)
            with lock:
                latencies.append(time.perf_counter() - start)
                tokens[0] += reply.usage.completion_tokens

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    ordered = sorted(latencies)
    return Load(clients, tokens[0] / wall, statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))])


def served_model(url: str) -> str:
    with urllib.request.urlopen(f"{url}/models", timeout=10) as response:
        return json.loads(response.read())["data"][0]["id"]


def measure(variant: str, gguf: Path, args) -> list[Load]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    log = Path(tempfile.gettempdir()) / f"bench-serve-{port}.log"
    process = start(variant, gguf, port, log)
    try:
        wait_ready(process, url, log)
        model, prompts = served_model(url), questions()
        loads = []
        for clients in args.clients:
            # warm-up at this concurrency: the first model step at each batch size costs about 2 s
            # more on a CPU (measured for the built-in model), which is not throughput
            run_load(url, model, clients, 1, 4, prompts)
            load = run_load(url, model, clients, args.requests, args.max_tokens, prompts)
            print(f"  {variant:20s} {clients} clients: {load.tokens_per_s:6.1f} tokens/s, "
                  f"p50 {load.p50_s:5.2f} s, p95 {load.p95_s:5.2f} s", flush=True)
            loads.append(load)
        return loads
    finally:
        process.terminate()
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4, help="requests per client")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--clients", default="1,4,8")
    parser.add_argument("--child", nargs=2, metavar=("TARGET", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        serve_child(args.child[0], int(args.child[1]))
        return
    args.clients = [int(c) for c in args.clients.split(",")]
    from engine.models.gguf_float import float_gguf
    from engine.models.registry import BUILTIN_MODELS, DEFAULT_MODEL
    from engine.paths import Home

    gguf = float_gguf(BUILTIN_MODELS[DEFAULT_MODEL].gguf_path(), DEFAULT_MODEL, Home.from_env())
    variants = ["tanren transformers", "tanren llama.cpp"]
    try:
        import llama_cpp.server.app  # noqa: F401 - only whether its extras are installed
        variants.append("llama_cpp.server")
    except ImportError:
        print('llama_cpp.server is missing its extras (pip install "tanren[bench]"): it is left out', flush=True)
    print(f"{DEFAULT_MODEL}; {args.requests} requests per client, {args.max_tokens} tokens each, greedy; "
          f"GGUF {gguf.name}; {len(os.sched_getaffinity(0))} CPU threads", flush=True)
    results = {variant: measure(variant, gguf, args) for variant in variants}

    print(f"\n{'variant':20s} {'clients':>7s} {'tokens/s':>9s} {'p50 s':>6s} {'p95 s':>6s} {'vs 1 client':>12s}")
    for variant, loads in results.items():
        for load in loads:
            print(f"{variant:20s} {load.clients:7d} {load.tokens_per_s:9.1f} {load.p50_s:6.2f} {load.p95_s:6.2f} "
                  f"{load.tokens_per_s / loads[0].tokens_per_s:11.2f}x")
    batched = results["tanren transformers"]
    print(f"\ngoals: transformers, {batched[-1].clients} clients over 1: "
          f"{batched[-1].tokens_per_s / batched[0].tokens_per_s:.2f}x (>= 3x)")
    if "llama_cpp.server" in results:
        ratios = ", ".join(f"{ours.clients} clients {ours.tokens_per_s / theirs.tokens_per_s:.2f}x" for ours, theirs
                           in zip(results["tanren llama.cpp"], results["llama_cpp.server"]))
        print(f"       GGUF, tanren over llama_cpp.server: {ratios} (>= 1.0x)")


if __name__ == "__main__":
    main()
