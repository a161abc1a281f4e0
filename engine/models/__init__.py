"""Base models: the built-in registry, resolution of what the user names, and safe loading."""
