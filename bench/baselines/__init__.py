"""Baselines the serving benchmark measures our model class against (serving-side envs only)."""
