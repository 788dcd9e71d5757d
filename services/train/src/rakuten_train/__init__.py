"""rakuten_train: the training service (model, tf.data input, evaluation, MLflow, registry).

Entry point: ``rakuten-train`` (:mod:`rakuten_train.cli`). Module map: ``params`` (the
``train:`` section of ``params.yaml``), ``pipeline`` (tf.data from the prepared parquet),
``model`` (Keras architecture), ``training`` (one run), ``evaluation`` and ``reports`` (test
metrics, files), ``tracking`` (MLflow run, registry, promotion), ``pyfunc_model`` (the MLflow
pyfunc wrapper of a bundle).
"""
