"""The domain flows: they decide, and call the store, render and parsing.

Never a protocol library (import-linter enforces it)."""
