"""Floor 2, pure logic over plain data: pandas, numpy and scikit-learn, no external system.

Raw data and its schema, the features, training and evaluation, the promotion gate, drift and
the retraining policy. No Kubeflow, Feast, MLflow, Kubernetes or Seldon import, no work at import
time, no reads of the environment.
"""
