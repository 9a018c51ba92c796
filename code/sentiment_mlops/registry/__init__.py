"""MLflow registry look-ups, the promotion gate and the model watcher that hot-swaps versions."""
