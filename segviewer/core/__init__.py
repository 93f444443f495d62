"""Numpy-only core: result types, palettes, image I/O, caches. Never imports Qt or torch."""
