"""`tanren export`: the whole pipeline as a detached process on the tiny model, and its failures."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ExportError, InvalidNameError, TanrenError
from engine.events import PERCENT, STAGES, Progress
from engine.locking import try_lock
from engine.paths import Home
from engine.runs.rundir import RunError
from export import verify, worker
from export.jobs import cancel_export, create_export, list_exports, open_export, prepare_export, start_export
from export.manifest import excluded_files, read_manifest, sha256
from tests.cli import TANREN, tanren, tanren_env, wait_for
from tests.full_disk import run_on_a_full_disk
from tests.export_runs import run_with_adapter, save_lora
from tests.llama_cpp_runner import llama_logits


@pytest.fixture(scope="module")
def exported(gguf_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, subprocess.CompletedProcess]:
    """One export of a run on the tiny model through the CLI, followed to the end."""
    home = Home(tmp_path_factory.mktemp("export-home") / "home")
    run_with_adapter(home, gguf_model_dir, "tiny")
    env = {**tanren_env(home), "PATH": str(Path(sys.executable).parent)}  # no ollama on PATH
    result = subprocess.run([str(TANREN), "export", "tiny", "--follow", "--quant", "q8_0,q4_k_m",
                             "--ollama", "tiny-test", "--name", "first"],
                            capture_output=True, text=True, env=env, timeout=600, check=False)
    return home, result


def test_export_writes_verified_artifacts_and_a_manifest(exported) -> None:
    home, result = exported
    assert result.returncode == 0, result.stdout + result.stderr
    export = open_export("tiny", "first", home)
    assert export.status().state == "done"
    out = export.out
    assert out == export.path / "artifacts"
    assert {p.name for p in out.iterdir()} >= {"merged", "tiny-f16.gguf", "tiny-q8_0.gguf", "tiny-q4_k_m.gguf",
                                                  "Modelfile", "README.md", "manifest.json"}
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]

    manifest = read_manifest(out)
    assert manifest["status"] == "passed" and manifest["error"] is None
    listed = {o["path"]: o for o in manifest["outputs"]}
    for name in ("tiny-f16.gguf", "tiny-q8_0.gguf", "tiny-q4_k_m.gguf", "Modelfile", "README.md",
                 "merged/model.safetensors"):
        assert listed[name]["size_bytes"] == (out / name).stat().st_size
        assert listed[name]["sha256"] == sha256(out / name)
    adapter = manifest["inputs"]["adapters"][0]
    assert adapter["name"] == "tiny" and adapter["weight"] == 1.0
    assert {f["path"] for f in adapter["files"]} == {"adapter_model.safetensors", "adapter_config.json"}
    assert manifest["merge"]["max_logit_diff"] < 1e-4
    assert {"torch", "transformers", "trl", "peft", "gguf", "llama-cpp-python"} <= set(manifest["tools"])

    models = {m["name"]: m for m in manifest["verification"]["models"]}
    assert list(models) == ["merged", "f16", "q8_0", "q4_k_m"]  # every quantized file loaded and answered
    assert abs(models["f16"]["perplexity_delta"]) < 0.01 and models["f16"]["reference"] == "merged"
    assert models["q8_0"]["reference"] == models["q4_k_m"]["reference"] == "f16"
    for model in models.values():
        assert np.isfinite(model["perplexity"]) and model["scored_tokens"] > 100
        assert len(model["answers"]) == len(verify.SMOKE_PROMPTS)
    assert manifest["ollama"] == {"name": "tiny-test", "created": False,
                                  "command": f"ollama create tiny-test -f {out / 'Modelfile'}"}
    assert manifest["modelfile"]["from"] == "q8_0" and "<|im_end|>" in manifest["modelfile"]["stops"]
    assert "FROM ./tiny-q8_0.gguf" in (out / "Modelfile").read_text()


def test_export_reports_progress_and_the_ollama_command(exported) -> None:
    home, result = exported
    assert "[1/9] locating the base model" in result.stdout
    assert "ollama is not installed here; create the model with: ollama create tiny-test" in result.stdout
    assert "[done] verified (perplexity F16" in result.stdout
    events = open_export("tiny", "first", home).events.read()
    progress = [e for e in events if isinstance(e, Progress) and e.unit == STAGES]
    assert [p.done for p in progress] == list(range(9)) and {p.total for p in progress} == {9}
    converted = [e.done for e in events if isinstance(e, Progress) and e.unit == PERCENT]
    assert converted[-1] == 100 and converted == sorted(converted)  # the converter's own progress bar
    assert "  F16 GGUF written: 100%" in result.stdout
    listing = tanren("exports", "tiny", home=home)
    assert listing.returncode == 0 and "first" in listing.stdout and "passed" in listing.stdout


def test_f16_gguf_logits_match_the_merged_model(exported) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    home, _result = exported
    out = open_export("tiny", "first", home).out
    tokenizer = AutoTokenizer.from_pretrained(out / "merged")
    text = tokenizer.apply_chat_template([{"role": "user", "content": "日本の首都は？ The capital of France?"}],
                                         add_generation_prompt=True, tokenize=False)
    ids = tokenizer.encode(text + "東京です。Paris.", add_special_tokens=False)
    model = AutoModelForCausalLM.from_pretrained(out / "merged", dtype=torch.float32)
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].numpy()
    got = llama_logits(out / "tiny-f16.gguf", ids)
    assert np.abs(got - expected).max() <= 5e-3 * np.abs(expected).max()


def test_push_needs_a_token_and_network_and_says_so(exported, tmp_path) -> None:
    home, _result = exported
    env = {**tanren_env(home), "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_TOKEN", None)
    no_token = subprocess.run([str(TANREN), "push", "tiny", "--repo", "taro/tiny"], capture_output=True, text=True,
                              env=env, timeout=60, check=False)
    assert no_token.returncode == 1
    assert "error: no Hugging Face token found" in no_token.stderr and "HF_TOKEN" in no_token.stderr
    started = time.monotonic()
    offline = subprocess.run([str(TANREN), "push", "tiny", "--repo", "taro/tiny"], capture_output=True, text=True,
                             env={**env, "HF_TOKEN": "hf_not_a_real_token"}, timeout=120, check=False)
    assert offline.returncode == 1
    assert "error: the Hugging Face Hub cannot be reached" in offline.stderr and "Traceback" not in offline.stderr
    assert time.monotonic() - started < 60
    bad_repo = tanren("push", "tiny", "--repo", "not a repo", home=home)
    assert bad_repo.returncode == 1 and "is not a Hub repository id" in bad_repo.stderr


def _run_worker(export) -> int:
    previous = signal.getsignal(signal.SIGTERM)
    try:
        return worker.main([str(export.path)])
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_quantized_file_that_fails_is_excluded_and_the_rest_published(gguf_model_dir, home, monkeypatch) -> None:
    """A limit no file can meet stands for a quantization that lost too much quality: that file is
    excluded, the Modelfile runs the next type asked for, and what passed may be pushed."""
    from export.hub import push_source

    monkeypatch.setitem(verify.PERPLEXITY_LIMITS, "q4_k_m", (-1.0, "f16"))
    run_with_adapter(home, gguf_model_dir, "strict")
    export = create_export(prepare_export("strict", home, quants="q4_k_m,q8_0", ollama="strict"), home)
    assert _run_worker(export) == 0
    status = export.status()
    assert status.state == "done" and status.reason.startswith("passed with exclusions: Q4_K_M perplexity")
    assert "the Modelfile runs Q8_0" in status.hint
    manifest = read_manifest(export.out)
    assert manifest["status"] == "passed with exclusions" and manifest["error"] is None
    assert excluded_files(manifest) == ["strict-q4_k_m.gguf"] and manifest["excluded"][0]["type"] == "q4_k_m"
    assert "at most -100% is allowed" in manifest["excluded"][0]["failures"][0]
    assert manifest["modelfile"]["from"] == "q8_0"
    assert "FROM ./strict-q8_0.gguf" in (export.out / "Modelfile").read_text()
    card = (export.out / "README.md").read_text()
    assert "`strict-q4_k_m.gguf` (excluded: failed verification)" in card and "passed with exclusions" in card
    assert push_source("strict", home) == export.out == push_source(str(export.out), home)
    uploaded = _push_with_a_fake_hub(export.out, monkeypatch)
    assert "strict-q4_k_m.gguf" in uploaded["ignore_patterns"]  # never published


def _push_with_a_fake_hub(folder: Path, monkeypatch) -> dict:
    """What push_folder asks the Hub to upload, with the Hub client replaced by a recorder."""
    import huggingface_hub

    from export.hub import push_folder

    calls: dict = {}

    class RecordingApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo, **_kwargs):
            return f"https://huggingface.co/{repo}"

        def upload_folder(self, **kwargs):
            calls.update(kwargs)

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    push_folder(folder, "taro/strict")
    return calls


def test_a_failing_f16_file_fails_the_export_and_is_not_pushed(gguf_model_dir, home, monkeypatch) -> None:
    """F16 is the conversion itself; if it fails, no file is trusted."""
    from export.hub import PushError, push_source

    monkeypatch.setitem(verify.PERPLEXITY_LIMITS, "f16", (-1.0, "merged"))
    run_with_adapter(home, gguf_model_dir, "broken")
    export = create_export(prepare_export("broken", home, quants="f16"), home)
    assert _run_worker(export) == 1
    status = export.status()
    assert status.state == "failed" and status.reason.startswith("verification failed: F16 perplexity")
    manifest = read_manifest(export.out)
    assert manifest["status"] == "failed" and "at most -100% is allowed" in manifest["error"]
    assert manifest["modelfile"] is None and not (export.out / "Modelfile").exists()
    assert manifest["no_modelfile"] == "no GGUF file passed verification"
    with pytest.raises(PushError, match="did not pass verification"):
        push_source(str(export.out), home)
    with pytest.raises(PushError, match="has no verified export"):
        push_source("broken", home)


def test_small_models_get_q8_0_alone_by_default(gguf_model_dir, home) -> None:
    run_with_adapter(home, gguf_model_dir, "auto")
    request = prepare_export("auto", home)
    assert request.quants == ()
    assert _run_worker(create_export(request, home)) == 0
    export = list_exports("auto", home)[0]
    manifest = read_manifest(export.out)
    assert manifest["export"]["quants"] == ["q8_0"] and manifest["status"] == "passed"
    assert {p.name for p in export.out.glob("*.gguf")} == {"auto-f16.gguf", "auto-q8_0.gguf"}
    logs = [e.message for e in export.events.read() if type(e).__name__ == "Log"]
    assert any("parameters: Q8_0 (choose others with --quant)" in line for line in logs)
    stages = [e for e in export.events.read() if isinstance(e, Progress) and e.unit == STAGES]
    assert {p.total for p in stages} == {len(stages)}  # counted right from the first stage


def test_cancelled_export_leaves_nothing_half_written(gguf_model_dir, home) -> None:
    run_with_adapter(home, gguf_model_dir, "cancel-me")
    export = start_export(prepare_export("cancel-me", home, quants="q8_0"), home)
    wait_for(lambda: any(isinstance(e, Progress) and e.message.startswith("verifying") for e in export.events.read()),
             what="the verification stage")
    assert cancel_export(export)
    wait_for(lambda: export.status().state != "running", what="the export to stop")
    assert export.status().state == "cancelled"
    wait_for(lambda: not export.is_alive(), what="the worker to exit")
    assert not [p for p in export.out.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.name]
    assert read_manifest(export.out)["status"] == "failed"
    assert read_manifest(export.out)["error"] == "cancelled on request"


def test_full_disk_fails_the_export_without_a_complete_looking_artifact(gguf_model_dir, home) -> None:
    """A file-size limit makes the kernel refuse writes past 64 KiB, as a full disk would."""
    run_with_adapter(home, gguf_model_dir, "full-disk")
    export = create_export(prepare_export("full-disk", home, quants="q8_0"), home)
    result = run_on_a_full_disk("from export.worker import main", f"sys.exit(main([{str(export.path)!r}]))",
                                timeout=600)
    assert result.returncode == 1, result.stderr[-2000:]
    status = export.status()
    assert status.state == "failed" and "disk filled up while writing merged" in status.reason
    assert {p.name for p in export.out.iterdir()} <= {"manifest.json", ".tanren-export.lock"}
    assert read_manifest(export.out)["status"] == "failed"


def test_bad_requests_are_refused_before_anything_starts(gguf_model_dir, home, tmp_path) -> None:
    with pytest.raises(RunError, match="no run named ghost"):
        prepare_export("ghost", home)
    run = run_with_adapter(home, gguf_model_dir, "good")
    for kwargs, message in [
        ({"quants": "q3_k"}, "unknown quantization type 'q3_k'"),
        ({"ollama": "Bad Name"}, "not a valid Ollama model name"),
        ({"weight": float("nan")}, "finite number other than 0"),
        ({"adapters": [str(tmp_path / "missing")]}, "holds no adapter_config.json"),
    ]:
        with pytest.raises(TanrenError, match=message):
            prepare_export("good", home, **kwargs)
    with pytest.raises(InvalidNameError):
        prepare_export("good", home, name="../escape")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ExportError, match="a-file is a file"):
        prepare_export("good", home, out=tmp_path / "a-file" / "out")
    held = try_lock(run.lock_file)  # as a training process holds it
    try:
        with pytest.raises(ExportError, match="good is still running"):
            prepare_export("good", home)
    finally:
        held.release()
    create_export(prepare_export("good", home, name="once"), home)
    with pytest.raises(ExportError, match="already has an export named once"):
        prepare_export("good", home, name="once")
    assert [e.name for e in list_exports("good", home)] == ["once"]

    bare = run_with_adapter(home, gguf_model_dir, "bare")
    for path in bare.adapter.iterdir():
        path.unlink()
    bare.adapter.rmdir()
    with pytest.raises(ExportError, match="bare has no adapter yet"):
        prepare_export("bare", home)
    result = tanren("export", "bare", home=home)
    assert result.returncode == 1 and result.stderr.startswith("error: bare has no adapter yet")


def test_extra_adapters_are_merged_with_their_weights(gguf_model_dir, home, tmp_path) -> None:
    run_with_adapter(home, gguf_model_dir, "two")
    extra = save_lora(gguf_model_dir, tmp_path / "extra", seed=5, targets=("o_proj",))
    request = prepare_export("two", home, quants="f16", weight=0.5, adapters=[f"{extra}:2"])
    assert [(a.name, a.weight) for a in request.extra_adapters] == [("extra", 2.0)]
    assert request.quants == ("f16",)
    export = create_export(request, home)
    assert export.request() == request  # the request survives its JSON round trip


def test_a_chat_format_ollama_cannot_say_exports_without_a_modelfile(gguf_model_dir, home, tmp_path) -> None:
    """A template outside the known families is not guessed: the GGUFs are written and verified,
    and the export passes without a Modelfile, saying why and how to run them with llama.cpp."""
    import shutil

    from transformers import AutoTokenizer

    from engine.data.render import PLAIN_TEMPLATE

    base = Path(shutil.copytree(gguf_model_dir, tmp_path / "plain-base"))
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.chat_template = PLAIN_TEMPLATE
    tokenizer.save_pretrained(base)
    run_with_adapter(home, base, "plain")
    export = create_export(prepare_export("plain", home, quants="q8_0", ollama="plain"), home)
    assert _run_worker(export) == 0
    manifest = read_manifest(export.out)
    assert export.status().state == "done" and manifest["status"] == "passed"
    assert not (export.out / "Modelfile").exists() and manifest["modelfile"] is None
    assert manifest["no_modelfile"].startswith("plain's chat template is not one tanren can translate for Ollama")
    assert manifest["ollama"] == {"name": "plain", "created": False, "command": None}
    stages = [e for e in export.events.read() if isinstance(e, Progress) and e.unit == STAGES]
    assert stages[-1].message == "writing the manifest" and stages[-1].done + 1 == stages[-1].total
    logs = [e.message for e in export.events.read() if type(e).__name__ == "Log"]
    [why] = [line for line in logs if line.startswith("no Ollama Modelfile: ")]
    assert "llama-server --jinja" in why and len(why.splitlines()) == 1
    assert "llama-server --jinja -m plain-q8_0.gguf" in (export.out / "README.md").read_text()
