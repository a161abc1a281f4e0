"""Export: merge adapters, write GGUF, quantize, Ollama Modelfile, Hub upload.

Headless: never imports Textual or the `tui` package.
"""
