"""`tanren serve`: an OpenAI-compatible API over the chat engine, as a detached job."""
