"""Floor 1, what serving shares with the platform: the standard library only.

The serving image copies this package whole (``images/serving/Dockerfile``): the flight request's
fields and rules, the request-time features Feast's on-demand view computes, the drift buckets.
Nothing here imports outside the standard library or outside this package.
"""
