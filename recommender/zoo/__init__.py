"""End to end on real models: shipped datasets, model providers and zoos, a feature cache, ranking and fine-tuning."""
