"""Package marker: test file names repeat across folders (test_cache, test_flow)."""
