"""Numpy-only video sources, key-frame schedules and caches."""
