"""Tests that drive a real headless Chromium (issue 4, item 5)."""
