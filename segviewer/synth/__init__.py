"""The shapes world: a seeded generator of labelled scenes and videos (numpy and OpenCV only)."""
