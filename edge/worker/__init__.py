"""The automation half: stream consumer, timers, journey runner."""
