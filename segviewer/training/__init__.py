"""The train command (imports torch)."""
