"""Command-line options that several commands share, kept outside the CLI package so that every
package's commands (chat, eval, ...) can use them."""

from __future__ import annotations

import argparse

from engine.config.schema import ModelConfig


def add_loading_options(parser: argparse.ArgumentParser) -> None:
    """How a transformers model is loaded, for every command that loads one."""
    _ = getattr(parser, "gettext", str)  # a TanrenParser holds the user's catalog
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                        help=_("transformers weights dtype"))
    parser.add_argument("--allow-pickle", action="store_true", help=_("accept pickle-based .bin/.pt weights"))
    parser.add_argument("--trust-remote-code", action="store_true", help=_("run Python code shipped with the model"))


def loading_config(args: argparse.Namespace, **fields) -> ModelConfig:
    """The ModelConfig of `add_loading_options`' flags, with other fields (base...) as given."""
    return ModelConfig(dtype=args.dtype, allow_pickle=args.allow_pickle, trust_remote_code=args.trust_remote_code,
                       **fields)
