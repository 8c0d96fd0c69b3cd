"""KFP components of the training pipeline: one per file, thin wrappers over ``ctloop``."""
