"""Pipeline definitions (wiring only) and their compile entry point."""
