"""Model adapters: the only package that imports torch (lazily, inside functions and submodules).

``segviewer.adapters.base`` and ``segviewer.adapters.registry`` stay importable without torch,
so listing models and reading cards is instant.
"""
