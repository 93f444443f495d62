"""Numpy-only renderers: a result becomes an RGBA layer; the same code makes exports."""
