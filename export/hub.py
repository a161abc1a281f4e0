"""`tanren push`: upload a verified export (or an adapter folder) to the Hugging Face Hub.

The folder goes up as it is, model card (README.md) and manifest included, less the files that
failed verification in an export that passed with exclusions; an export whose verification
failed is refused. Every network call has short timeouts, so a machine without
network gets one clear error in seconds instead of a hang.
"""

from __future__ import annotations

import re
from pathlib import Path

from engine.errors import TanrenError
from engine.paths import Home
from engine.phrases import phrase
from export.manifest import PUBLISHABLE, excluded_files, read_manifest

_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
CONNECT_TIMEOUT_S = 10.0
IO_TIMEOUT_S = 60.0  # per read or write on the socket, not for a whole upload
_TOKEN_HINT = phrase("set HF_TOKEN to a write token from https://huggingface.co/settings/tokens, or run `hf auth login`")


class PushError(TanrenError):
    """A folder cannot be pushed to the Hub: nothing to push, no token, no network, or refused."""


def check_repo_id(repo: str) -> str:
    if not _REPO.fullmatch(repo) or ".." in repo:
        raise PushError(phrase("{repo!r} is not a Hub repository id", repo=repo), where="--repo",
                        hint=phrase("use USER/NAME, e.g. taro/my-model"))
    return repo


def push_source(spec: str, home: Home, *, export_name: str | None = None) -> Path:
    """The folder to push for `spec`: an export folder or adapter folder given as a path, or a run's
    newest verified export (or the one named)."""
    from export.jobs import list_exports, open_export

    path = Path(spec).expanduser()
    if path.is_dir():
        return _pushable(path.resolve())
    if export_name:
        return _pushable(open_export(spec, export_name, home).out)
    for export in list_exports(spec, home):
        out = export.out
        manifest = read_manifest(out)
        if manifest is not None and manifest.get("status") in PUBLISHABLE:
            return out
    raise PushError(phrase("{run} has no verified export to push", run=spec),
                    hint=phrase("export it first: {command}", command="tanren export " + spec))


def _pushable(folder: Path) -> Path:
    if (folder / "adapter_config.json").is_file():
        return folder  # a PEFT adapter folder, with the model card training wrote
    manifest = read_manifest(folder)
    if manifest is None:
        raise PushError(phrase("{folder} is neither an export folder (no manifest.json) nor an adapter folder",
                               folder=folder),
                        where=str(folder), hint=phrase("push a run name, the artifacts folder of an export, or a run's "
                                                       "adapter/"))
    if manifest.get("status") not in PUBLISHABLE:
        raise PushError(phrase("the export in {folder} did not pass verification ({why})", folder=folder,
                               why=manifest.get("error") or manifest.get("status")),
                        where=str(folder / "manifest.json"),
                        hint=phrase("fix the export and run it again; failed exports are not published"))
    return folder


def push_folder(folder: Path, repo: str, *, private: bool = False) -> str:
    """Create `repo` (if needed) and upload `folder` to it; returns the repository's URL."""
    from huggingface_hub import HfApi, get_token

    check_repo_id(repo)
    token = get_token()
    if not token:
        raise PushError(phrase("no Hugging Face token found"), hint=_TOKEN_HINT)
    _set_timeouts()
    api = HfApi(token=token)
    excluded = excluded_files(read_manifest(folder) or {})  # failed verification: never published
    try:
        url = api.create_repo(repo, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=repo, folder_path=str(folder), repo_type="model",
                          ignore_patterns=[".*", "**/.*", *excluded],
                          commit_message=f"Upload {folder.name} with tanren")
    except Exception as exc:  # noqa: BLE001 - every failure of the Hub client becomes one clear message
        raise _hub_error(exc, repo) from None
    return str(url)


def _set_timeouts() -> None:
    import httpx2
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils._http import default_client_factory

    def client():
        session = default_client_factory()
        session.timeout = httpx2.Timeout(IO_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        return session

    set_client_factory(client)


def _hub_error(exc: Exception, repo: str) -> PushError:
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return PushError(phrase("the Hugging Face Hub cannot be reached: offline mode is on (HF_HUB_OFFLINE)"),
                         hint=phrase("unset HF_HUB_OFFLINE on a machine with network access"))
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            return PushError(phrase("the Hub refused the token for {repo} (HTTP {status})", repo=repo, status=status),
                             hint=phrase("{hint} (with write access)", hint=_TOKEN_HINT))
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        return PushError(phrase("the Hub refused the upload to {repo}: {error}", repo=repo, error=first_line))
    if _is_network_error(exc):
        return PushError(phrase("the Hugging Face Hub cannot be reached ({error})",
                                error=_exception_text(exc, 120)),
                         hint=phrase("check the network connection and proxy settings (HTTPS_PROXY), then push again"))
    return PushError(phrase("pushing to {repo} failed: {error}", repo=repo, error=_exception_text(exc, 200)))


def _exception_text(exc: Exception, limit: int) -> str:
    """The library's own error, as it said it: its type and the start of its message."""
    return f"{type(exc).__name__}: {str(exc)[:limit]}"


def _is_network_error(exc: Exception) -> bool:
    import httpx2

    return isinstance(exc, (httpx2.TransportError, OSError))  # ConnectionError and TimeoutError are OSErrors
