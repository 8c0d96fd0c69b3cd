"""Floor 4, use cases that combine the core with adapters.

The pipeline's steps, deploy and rollback, the serving stack, a monitoring pass, the year replay
and its report.
"""
