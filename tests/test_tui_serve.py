"""Serving from the workbench: one key on a run starts a server, its screen shows the URL and each
request as it comes, another key stops it. The Chat screen can talk to a running server."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from textual.widgets import OptionList, Static

from engine.events import HttpRequest
from engine.jobs import request_stop
from engine.paths import Home
from engine.serve.jobs import open_server
from tests.tiny_model import make_adapter
from tests.tui_helpers import finished_run, fixed_system, type_text, wait_until
from tui.app import TanrenApp
from tui.widgets.log_lines import LogLines
from tui.screens.chat import ChatPane, ChatScreen
from tui.screens.picker import Picker
from tui.screens.serve import ServeScreen
from tui.screens.train import TrainScreen


async def test_serve_a_run_see_its_url_and_requests_then_stop_it(home: Home, tiny_model_dir: Path) -> None:
    run = finished_run(home, "served", base=str(tiny_model_dir))
    make_adapter(tiny_model_dir, run.adapter, seed=1)
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        assert isinstance(app.screen, TrainScreen)
        app.screen.show_run("served")
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, ServeScreen), "the serve screen")
        screen = app.screen
        server = open_server("served", home)
        try:
            await wait_until(pilot, lambda: "http://127.0.0.1:" in str(screen.query_one("#serve-url", Static).render()),
                             "the URL", timeout=120)
            url = server.info().url
            assert url in str(screen.query_one("#serve-url", Static).render())
            client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=120)
            # the server is its own process, so a blocking call here holds up nothing it needs
            reply = client.chat.completions.create(model="served", max_tokens=3,
                                                   messages=[{"role": "user", "content": "hi"}])
            assert reply.model == "served"
            log = screen.query_one("#serve-log", LogLines)
            await wait_until(pilot, lambda: any("POST /v1/chat/completions 200 served" in line for line in log.messages),
                             "the request in the log")

            await pilot.press("escape", "4")  # the server keeps serving; the Chat screen can talk to it
            chat = app.screen
            assert isinstance(chat, ChatScreen)
            await pilot.press("ctrl+o")
            await wait_until(pilot, lambda: isinstance(app.screen, Picker), "the target picker")
            options = app.screen.query_one(OptionList)
            labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
            options.highlighted = next(i for i, label in enumerate(labels) if "served @ served" in label)
            await pilot.press("enter")
            pane = chat.query_one("#pane-a", ChatPane)
            assert pane.spec.kind == "server" and pane.spec.server == "served"
            await type_text(pilot, "hello")
            await pilot.press("enter")
            await wait_until(pilot, lambda: len(pane.history) == 2, "the server's answer")
            requests = [e for e in server.events.read() if isinstance(e, HttpRequest)]
            assert [e.status for e in requests] == [200, 200]

            await pilot.press("f3", "v")  # the run's server already runs: its screen again
            await wait_until(pilot, lambda: isinstance(app.screen, ServeScreen), "the serve screen again")
            screen = app.screen
            await wait_until(pilot, lambda: "running" in str(screen.query_one("#serve-state", Static).render()),
                             "the running state")
            await pilot.press("x")
            await wait_until(pilot, lambda: server.status().state == "done", "the server to stop", timeout=60)
            await wait_until(pilot, lambda: "done" in str(screen.query_one("#serve-state", Static).render()),
                             "the stopped state")
        finally:
            request_stop(server)  # whatever failed above, no server outlives the test
            server.wait_until_released(timeout_s=60)
        await pilot.press("escape")
        assert isinstance(app.screen, TrainScreen)


def _finished_export(home: Home, tiny_model_dir: Path, gguf: Path):
    """A run with a verified export whose GGUF is `gguf` (a link: the shipped model, served by llama.cpp)."""
    from export.jobs import ARTIFACTS, ExportRequest, create_export, export_path
    from export.manifest import PASSED, records, write_manifest

    run = finished_run(home, "exported", base=str(tiny_model_dir))
    make_adapter(tiny_model_dir, run.adapter, seed=2)  # a trained run, which the Export screen offers
    out = export_path(run, "e1") / ARTIFACTS
    export = create_export(ExportRequest(run="exported", name="e1", out=str(out)), home)
    out.mkdir()
    (out / "model.Q4_1.gguf").symlink_to(gguf)
    write_manifest(out, status=PASSED, outputs=records([out / "model.Q4_1.gguf"], out))
    export.set_status("done", "verified")
    return export


@pytest.mark.real_model
async def test_serve_an_export_from_the_export_screen(home: Home, tiny_model_dir: Path) -> None:
    from engine.models.registry import BUILTIN_MODELS, DEFAULT_MODEL
    from tui.screens.export import ExportScreen

    export = _finished_export(home, tiny_model_dir, BUILTIN_MODELS[DEFAULT_MODEL].gguf_path())
    app = TanrenApp(home, sample_system=fixed_system)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        assert isinstance(app.screen, ExportScreen)
        await wait_until(pilot, lambda: app.screen.export is not None, "the export", timeout=30)
        await pilot.press("ctrl+f")
        await wait_until(pilot, lambda: isinstance(app.screen, ServeScreen), "the serve screen")
        screen, server = app.screen, open_server("exported-e1", home)
        try:
            await wait_until(pilot, lambda: "model.Q4_1.gguf" in str(screen.query_one("#serve-url", Static).render()),
                             "the served model", timeout=120)
            assert server.info().models == ("model.Q4_1.gguf",) and export.name in server.name
            await pilot.press("x")
            await wait_until(pilot, lambda: server.status().state == "done", "the server to stop", timeout=60)
        finally:
            request_stop(server)
            server.wait_until_released(timeout_s=60)
