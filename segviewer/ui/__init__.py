"""Every Qt import lives under this package."""
