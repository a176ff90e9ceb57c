"""Floor 1: typed events, the event bus and errors meant for people. Imports nothing of ours."""
