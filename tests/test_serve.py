"""`tanren serve`'s API, driven by the official `openai` client against a real server on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from engine.config import RunConfig, apply_overrides
from engine.errors import ConfigError
from engine.paths import Home
from engine.runs.rundir import create_run
from engine.serve.answer import StopStrings
from engine.serve.listen import Listener
from engine.serve.settings import ServeSettings
from tests.cli import tanren
from tests.serve_helpers import Served
from tests.tiny_model import make_adapter

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ADAPTERS = ("tuned-a", "tuned-b")
KEY = "test-key-0123456789"


def _runs(home: Home, base: Path) -> None:
    for seed, name in enumerate(ADAPTERS, start=1):
        run = create_run(apply_overrides(RunConfig(), [f"model.base={base}", f"name={name}"]), home)
        make_adapter(base, run.adapter, seed=seed)
        run.set_status("done", "adapter saved by the test")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return Home(tmp_path_factory.mktemp("serve-home"))


@pytest.fixture(scope="module")
def server(home: Home, tiny_model_dir: Path):
    _runs(home, tiny_model_dir)
    served = Served(home, list(ADAPTERS), ServeSettings(port=0, max_tokens=64, max_body_bytes=64 * 1024))
    yield served
    served.close()


def _ask(client: openai.OpenAI, model: str, text: str = "hello", **params) -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}],
                                          **{"max_tokens": 12, "temperature": 0, **params})


def test_the_model_list_names_every_adapter_and_their_shared_base(server: Served, tiny_model_dir: Path) -> None:
    names = [model.id for model in server.client().models.list()]
    assert names == [*ADAPTERS, tiny_model_dir.name]
    backends = {id(model.target.backend) for model in server.models.models.values()}
    assert len(backends) == 1  # one loaded copy of the base under all three names


def test_chat_answers_with_usage_and_a_finish_reason(server: Served) -> None:
    reply = _ask(server.client(), "tuned-a")
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length") and reply.model == "tuned-a"
    assert reply.usage.prompt_tokens > 0 and 0 < reply.usage.completion_tokens <= 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    event = server.events[-1]
    assert (event.path, event.status, event.model) == ("/v1/chat/completions", 200, "tuned-a")
    assert event.completion_tokens == reply.usage.completion_tokens and event.latency_s > 0


def test_a_streamed_answer_is_the_same_answer_in_pieces(server: Served) -> None:
    whole = _ask(server.client(), "tuned-b").choices[0].message.content
    chunks = list(_ask(server.client(), "tuned-b", stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals in (["stop"], ["length"])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0  # include_usage's last chunk


def test_completions_continue_a_raw_prompt(server: Served, tiny_model_dir: Path) -> None:
    reply = server.client().completions.create(model=tiny_model_dir.name, prompt="Once upon a time", max_tokens=6,
                                               temperature=0)
    assert reply.choices[0].text and reply.choices[0].finish_reason in ("stop", "length")
    streamed = server.client().completions.create(model=tiny_model_dir.name, prompt="Once upon a time",
                                                  max_tokens=6, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == reply.choices[0].text


def test_each_adapter_answers_as_tanren_chat_does(server: Served, home: Home, tiny_model_dir: Path) -> None:
    answers = {}
    for name in ADAPTERS:
        answers[name] = _ask(server.client(), name, "What is the capital of France?").choices[0].message.content
        chat = tanren("chat", str(tiny_model_dir), "--adapter", name, "--prompt", "What is the capital of France?",
                      "--temperature", "0", "--max-new-tokens", "12", home=home)
        assert chat.returncode == 0, chat.stderr
        assert chat.stdout.rstrip("\n") == answers[name]
    assert answers["tuned-a"] != answers["tuned-b"]  # the request's model picked the adapter


def test_a_stop_string_ends_the_answer_before_it(server: Served) -> None:
    whole = _ask(server.client(), "tuned-a", max_tokens=24).choices[0].message.content
    stop = whole[len(whole) // 2:len(whole) // 2 + 2]
    reply = _ask(server.client(), "tuned-a", max_tokens=24, stop=[stop])
    assert reply.choices[0].message.content == whole[:whole.index(stop)]
    assert reply.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(("deltas", "stops", "shown"), [
    (["Hel", "lo wor", "ld"], ["o w"], ["Hel", "l"]),           # held back while it may begin a stop
    (["ab", "c", "d"], ["xyz"], ["ab", "c", "d"]),
    (["a\n", "\nb"], ["\n\n"], ["a", ""]),
    (["こんに", "ちは。", "次"], ["。"], ["こんに", "ちは"]),
])
def test_stop_strings_cut_the_stream(deltas, stops, shown) -> None:
    cut = StopStrings(stops)
    assert [cut.feed(d) for d in deltas][:len(shown)] == shown and cut.stopped == (stops != ["xyz"])


BAD = [
    pytest.param(b"{not json", 400, None, id="bad JSON"),
    pytest.param(json.dumps({"messages": [{"role": "user", "content": "hi"}], "temperature": 3}).encode(),
                 400, "temperature", id="temperature out of range"),
    pytest.param(json.dumps({"messages": [{"role": "user", "content": "hi"}], "n": 2}).encode(), 400, "n",
                 id="several choices"),
    pytest.param(json.dumps({"messages": [{"role": "user", "content": "hi"}], "tools": []}).encode(), 400, "tools",
                 id="unknown field"),
    pytest.param(json.dumps({"messages": []}).encode(), 400, "messages", id="no messages"),
    pytest.param(json.dumps({"messages": [{"role": "user", "content": "hi"}], "model": "nope"}).encode(), 404,
                 "model", id="unknown model"),
    pytest.param(json.dumps({"messages": [{"role": "user", "content": "hi " * 300}]}).encode(), 400, "messages",
                 id="context overflow"),
    pytest.param(json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 65}).encode(), 400,
                 "max_tokens", id="more tokens than the server allows"),
    pytest.param(json.dumps({"messages": [{"role": "user", "content": "x" * 70000}]}).encode(), 413, None,
                 id="body too large"),
]


@pytest.mark.parametrize(("body", "status", "param"), BAD)
def test_a_bad_request_gets_a_4xx_in_openais_shape_and_the_server_lives_on(server, body, status, param) -> None:
    code, answer = server.post("/v1/chat/completions", body)
    assert code == status
    assert set(answer["error"]) == {"message", "type", "param", "code"}
    assert answer["error"]["type"] == "invalid_request_error" and answer["error"]["message"]
    if param:
        assert answer["error"]["param"] == param
    assert server.events[-1].status == status
    assert _ask(server.client(), "tuned-a", max_tokens=2).choices[0].message.content is not None


def test_the_openai_client_sees_the_errors_it_expects(server: Served) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        _ask(server.client(), "no-such-model")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as overflow:
        _ask(server.client(), "tuned-a", "hello " * 300)
    assert overflow.value.code == "context_length_exceeded" and "maximum context length is 256" in str(overflow.value)


def test_a_public_address_needs_an_api_key(home: Home, tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        ServeSettings(host="0.0.0.0")
    assert refused.value.where == "--host" and "--api-key" in refused.value.hint
    served = Served(home, [str(tiny_model_dir)], ServeSettings(host="0.0.0.0", port=0, api_key=KEY))
    try:
        for key in ("wrong-key-0123456789", ""):
            with pytest.raises(openai.AuthenticationError):
                served.client(key or "x").models.list()
        code, answer = served.post("/v1/chat/completions", b"{}")  # no key at all: refused before the body is read
        assert code == 401 and answer["error"]["type"] == "authentication_error"
        assert [m.id for m in served.client(KEY).models.list()] == [tiny_model_dir.name]
        assert _ask(served.client(KEY), tiny_model_dir.name, max_tokens=2).choices
    finally:
        served.close()


def test_a_port_in_use_is_a_clear_error(server: Served) -> None:
    with pytest.raises(ConfigError) as taken:
        Listener(None, ServeSettings(port=server.listener.port))
    assert "already in use" in taken.value.message and taken.value.where == "--port"


@pytest.mark.real_model
def test_a_gguf_file_is_served_through_llama_cpp_with_the_same_endpoints(tmp_path: Path) -> None:
    from engine.models.registry import BUILTIN_MODELS, DEFAULT_MODEL

    gguf = BUILTIN_MODELS[DEFAULT_MODEL].gguf_path()
    home = Home(tmp_path / "home")
    served = Served(home, [str(gguf)], ServeSettings(port=0, max_tokens=64))
    try:
        assert served.models.get(None).target.backend.kind == "llama.cpp"
        assert [m.id for m in served.client().models.list()] == [gguf.name]
        question = "What is the capital of France?"
        reply = _ask(served.client(), gguf.name, question, max_tokens=16)
        chat = tanren("chat", str(gguf), "--prompt", question, "--temperature", "0", "--max-new-tokens", "16",
                      home=home)
        assert chat.returncode == 0, chat.stderr
        assert reply.choices[0].message.content == chat.stdout.rstrip("\n") != ""
        streamed = _ask(served.client(), gguf.name, question, max_tokens=16, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == \
            reply.choices[0].message.content
        completion = served.client().completions.create(model=gguf.name, prompt="The capital of France is",
                                                        max_tokens=4, temperature=0)
        assert completion.choices[0].text and completion.usage.completion_tokens <= 4
        code, answer = served.post("/v1/chat/completions", b"{oops")
        assert code == 400 and answer["error"]["type"] == "invalid_request_error"
    finally:
        served.close()
