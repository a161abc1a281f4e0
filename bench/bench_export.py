"""End-to-end export of the default model with a trained adapter: merge, convert, quantize, verify.

Trains a short LoRA on the bundled chat sample (or reuses the run from an earlier call), then
runs `tanren export` exactly as a user does - a detached process, followed to the end - and
prints the time of each stage (llama.cpp's converter beside the merge of the same run), the
file sizes, and the perplexity of every file against its reference (merged HF model for F16,
F16 for the quantized files). Without --quant the export picks the types by the model's size,
as one key in the workbench does. Goal: under 90 s in total on a 2-core machine.

    PYTHONPATH=. python bench/bench_export.py [--steps 12] [--quant q8_0,q4_k_m] [--fresh]

It uses $TANREN_HOME (the default model is converted there once).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

RUN = "bench-export"
GOAL_S = 90.0


def trained_run(home, steps: int, fresh: bool):
    from engine.config import RunConfig, apply_overrides
    from engine.data import SAMPLE_CHAT
    from engine.runs.rundir import create_run, list_runs, remove_run
    from engine.train import worker

    existing = next((r for r in list_runs(home) if r.name == RUN), None)
    if existing is not None and (fresh or existing.status().state != "done"):
        remove_run(existing)
        existing = None
    if existing is not None:
        print(f"reusing the trained run {RUN} ({existing.path})")
        return existing
    config = apply_overrides(RunConfig(), [f"name={RUN}", f"data.path={SAMPLE_CHAT}", f"training.max_steps={steps}",
                                           "training.save_steps=1000", "data.max_length=256",
                                           "training.micro_batch_size=4", "training.gradient_accumulation=1"])
    run = create_run(config, home)
    started = time.perf_counter()
    print(f"training {RUN}: {steps} LoRA steps on {SAMPLE_CHAT.name} ...", flush=True)
    if worker.main([str(run.path)]) != 0:
        raise SystemExit(f"training failed: {run.status()}")
    print(f"trained in {time.perf_counter() - started:.0f} s")
    return run


def main() -> None:
    from engine.paths import Home
    from engine.textwidth import format_table, human_bytes
    from export.jobs import prepare_export, start_export
    from export.manifest import read_manifest

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--quant", default=None, help="GGUF types (default: by the model's size)")
    parser.add_argument("--fresh", action="store_true", help="train the adapter again")
    args = parser.parse_args()

    home = Home.from_env()
    trained_run(home, args.steps, args.fresh)
    request = prepare_export(RUN, home, quants=args.quant)
    started = time.perf_counter()
    export = start_export(request, home)
    with contextlib.redirect_stdout(io.StringIO()):  # the stage lines; the tables below say it all
        from engine.jobs.print_follow import follow

        outcome = follow(export)
    total = time.perf_counter() - started
    manifest = read_manifest(export.out) or {}
    print(f"export {manifest.get('status', 'FAILED') if outcome == 0 else 'FAILED'}: {export.status().reason}")

    timings = manifest.get("timings_s", {})
    rows = [[stage, f"{seconds:.1f}"] for stage, seconds in timings.items()]
    rows.append(["process start, imports, events", f"{total - sum(timings.values()):.1f}"])
    rows.append(["total (launch to done)", f"{total:.1f}"])
    print(format_table(["stage", "seconds"], rows))
    if timings.get("merge") and timings.get("convert"):
        print(f"conversion (llama.cpp's converter) {timings['convert']:.1f} s beside the merge {timings['merge']:.1f} s: "
              f"{timings['convert'] / timings['merge']:.2f}x")

    sizes = {o["path"]: o["size_bytes"] for o in manifest.get("outputs", [])}
    merged_bytes = sum(size for path, size in sizes.items() if path.startswith("merged/"))
    verification = manifest.get("verification", {"models": []})
    rows = []
    for model in verification["models"]:
        name = model["name"]
        size = merged_bytes if name == "merged" else sizes.get(f"{RUN}-{name}.gguf", 0)
        delta = model["perplexity_delta"]
        same = model["same_answers"]
        stopped = sum(a["stopped"] for a in model["answers"])
        rows.append([name, human_bytes(size), f"{model['perplexity']:.4f}",
                     "-" if delta is None else f"{delta:+.2%} vs {model['reference']}",
                     "-" if model["limit"] is None else f"{model['limit']:+.0%}",
                     "-" if same is None else f"{same}/{len(model['answers'])}", f"{stopped}/{len(model['answers'])}",
                     f"{model['seconds']:.1f}"])
    print(f"perplexity on {verification.get('examples')} held-out examples ({verification.get('data')}):")
    print(format_table(["model", "size", "perplexity", "change", "limit", "same answers", "stopped", "check s"], rows))
    merge = manifest.get("merge") or {}
    print(f"merge: largest logit difference to base + adapter {merge.get('max_logit_diff', float('nan')):.2e}")
    print(f"goal: under {GOAL_S:.0f} s -> {'met' if total < GOAL_S else 'NOT met'} ({total:.1f} s)")
    print(f"files: {export.out}; state: {export.path}")


if __name__ == "__main__":
    main()
