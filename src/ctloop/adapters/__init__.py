"""Floor 3, one module per external system, each the only importer of its library.

MLflow (``registry``), Feast (``featurestore``), Kubernetes (``kube``), the KFP API
(``kfp_client``), Prometheus or a ``/metrics`` page (``metrics_source``), podman
(``containers``), Redis and local processes (``services``). Callers get methods, not clients.
"""
