"""Chat: streaming multi-turn answers from a base model, its adapters or a GGUF file.

`targets.open_backend` loads a backend (transformers or llama.cpp); `backend.ChatTarget` pairs
it with an adapter; `stream_chat` yields the answer; `compare.compare` runs two targets with one
seed; `sessions` saves chats. Modules import torch and llama_cpp only when a model is loaded.
"""
