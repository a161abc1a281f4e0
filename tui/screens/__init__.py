"""One module per screen; each is thin over the engine and does its blocking work in workers."""
