"""KFP components of the feature and training pipelines: one per file, thin wrappers over ``ctloop.app``."""
