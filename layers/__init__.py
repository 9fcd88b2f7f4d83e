"""pydeck layer builders: pure functions from frames to layers, testable without a browser."""
