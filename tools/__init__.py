"""Developer tools: the GPU self-check and the tower probe it shares with the tests."""
