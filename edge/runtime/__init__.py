"""What every process needs: settings, the clock, the Redis deadline, metrics, the heap."""
