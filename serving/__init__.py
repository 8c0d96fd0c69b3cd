"""The Seldon Core model class and its HTTP extras. Runs in the serving env only.

Imports nothing from the platform env (no pandas, Feast, MLflow, scikit-learn): the model arrives
as ONNX plus JSON metadata exported by ``ctloop deploy``, features come from the Feast feature
server over HTTP, and the request-time features and drift buckets come from the two
standard-library modules ``ctloop.contract.flight_request`` and ``ctloop.contract.buckets``.
"""
