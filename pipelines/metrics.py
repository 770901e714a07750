"""Custom TFMA metrics for value models: normalized Gini, a decile table, and
the same plus error metrics for a prediction stored in a feature column.

Usage in an EvalConfig::

    tfma.MetricConfig(class_name='NormalizedGini', module='pipelines.metrics')
    tfma.MetricConfig(class_name='DecileTable', module='pipelines.metrics')
    # A third predictor whose per-example prediction is a feature of the
    # evaluated examples (e.g. a BTYD model's CLV), scored against the label
    # of the output it is configured for:
    tfma.MetricConfig(class_name='FeaturePredictionMetrics',
                      module='pipelines.metrics',
                      config='{"feature": "btyd_clv", "prefix": "btyd"}')

All metrics are non-decomposable: one combiner collects every
(label, prediction) pair of a slice and computes the result at the end, with
the prediction taken from the model output or, for FeaturePredictionMetrics,
from the feature. Results do not depend on the order of the examples.
Example weights are ignored.
"""
from typing import Callable, Dict, Iterable, List, Optional, Union

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from google.protobuf import wrappers_pb2
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util

NORMALIZED_GINI_NAME = 'normalized_gini'
DECILE_TABLE_NAME = 'decile'
FEATURE_PREDICTION_METRICS_NAME = 'feature_prediction_metrics'
NUM_DECILES = 10

ArrayLike = Union[np.ndarray, Iterable[float]]


def _lorenz_gini(labels: np.ndarray, scores: np.ndarray) -> float:
  """Returns (area under the Lorenz curve) - 0.5 when ranking by `scores`.

  Examples are sorted by score descending; the curve has one point per tie
  group of scores, so tied scores are treated as one indivisible block.
  """
  order = np.lexsort((labels, -scores))  # Full value order: input-order free.
  scores, labels = scores[order], labels[order]
  group_ends = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))
  x = np.append(0.0, (group_ends + 1) / len(scores))
  y = np.append(0.0, np.cumsum(labels)[group_ends] / labels.sum())
  area = np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0)
  return float(area - 0.5)


def normalized_gini(labels: ArrayLike, predictions: ArrayLike) -> float:
  """Returns the tie-consistent normalized Gini of `predictions` for `labels`.

  gini(p) = (area under the Lorenz curve of cumulative label share against
  cumulative example share, ranking by p descending, ties grouped) - 0.5, and
  the result is gini(predictions) / gini(labels). Constant predictions give
  0.0, a perfect ranking 1.0, a reversed one -1.0. Returns NaN when there are
  no examples, the label sum is 0 or gini(labels) is 0.
  """
  labels = np.asarray(labels, dtype=np.float64).ravel()
  predictions = np.asarray(predictions, dtype=np.float64).ravel()
  if labels.size == 0 or labels.sum() == 0.0:
    return float('nan')
  label_gini = _lorenz_gini(labels, labels)
  if label_gini == 0.0:
    return float('nan')
  return _lorenz_gini(labels, predictions) / label_gini


def decile_table(labels: ArrayLike,
                 predictions: ArrayLike,
                 n: int = NUM_DECILES) -> List[Dict[str, float]]:
  """Returns `n` rows of decile, count, mean_prediction and mean_label.

  Each label is first replaced by the mean label of its tie group (examples
  with the same prediction), then examples are sorted by prediction
  descending (then label) and split with `np.array_split` into `n` near-equal groups;
  decile 1 holds the highest predictions. Empty groups (fewer than `n`
  examples) have count 0 and NaN means.
  """
  labels = np.asarray(labels, dtype=np.float64).ravel()
  predictions = np.asarray(predictions, dtype=np.float64).ravel()
  # Sorting on (prediction desc, label) first fixes the summation order, so
  # the result is bit-identical for any input order.
  order = np.lexsort((labels, -predictions))
  labels, predictions = labels[order], predictions[order]
  _, tie_group = np.unique(predictions, return_inverse=True)
  tie_means = (np.bincount(tie_group, weights=labels) /
               np.bincount(tie_group))
  labels = tie_means[tie_group]
  rows = []
  for i, idx in enumerate(np.array_split(np.arange(len(labels)), n), start=1):
    rows.append({
        'decile': i,
        'count': len(idx),
        'mean_prediction':
            float(predictions[idx].mean()) if len(idx) else float('nan'),
        'mean_label': float(labels[idx].mean()) if len(idx) else float('nan'),
    })
  return rows


def decile_metric_names(name: str = DECILE_TABLE_NAME) -> List[str]:
  """Returns the 20 metric names produced by `DecileTable(name)`, in order."""
  return [
      f'{name}_{i:02d}_{stat}' for i in range(1, NUM_DECILES + 1)
      for stat in ('mean_prediction', 'mean_label')
  ]


REGRESSION_STATS = ('example_count', 'mean_absolute_error',
                    'root_mean_squared_error', 'mean_prediction', 'mean_label')


def regression_summary(labels: ArrayLike,
                       predictions: ArrayLike) -> Dict[str, float]:
  """Returns the REGRESSION_STATS of `predictions` against `labels`.

  example_count, mean_absolute_error, root_mean_squared_error,
  mean_prediction and mean_label, as float64 Python floats; the means are NaN
  when there are no examples. Sums run over the pairs sorted by (prediction
  desc, label), so the result is bit-identical for any input order.
  """
  labels = np.asarray(labels, dtype=np.float64).ravel()
  predictions = np.asarray(predictions, dtype=np.float64).ravel()
  if labels.size == 0:
    return {stat: 0.0 if stat == 'example_count' else float('nan')
            for stat in REGRESSION_STATS}
  order = np.lexsort((labels, -predictions))
  labels, predictions = labels[order], predictions[order]
  errors = predictions - labels
  return {
      'example_count': float(labels.size),
      'mean_absolute_error': float(np.abs(errors).mean()),
      'root_mean_squared_error': float(np.sqrt(np.square(errors).mean())),
      'mean_prediction': float(predictions.mean()),
      'mean_label': float(labels.mean()),
  }


def feature_prediction_metric_names(prefix: str) -> List[str]:
  """Returns the 26 metric names of `FeaturePredictionMetrics(prefix=...)`.

  In order: `{prefix}_` + each of REGRESSION_STATS, `{prefix}_normalized_gini`
  and `{prefix}_decile_01_mean_prediction` ... `{prefix}_decile_10_mean_label`.
  """
  return ([f'{prefix}_{stat}' for stat in REGRESSION_STATS] +
          [f'{prefix}_{NORMALIZED_GINI_NAME}'] +
          decile_metric_names(f'{prefix}_{DECILE_TABLE_NAME}'))


# Functions from the collected (labels, predictions) of a slice to one value
# per metric key (same order as the names above). Module level: picklable.
ValuesFn = Callable[[np.ndarray, np.ndarray], List[float]]


def _single_name(name: str) -> List[str]:
  return [name]


def _gini_values(labels: np.ndarray, predictions: np.ndarray) -> List[float]:
  return [normalized_gini(labels, predictions)]


def _decile_values(labels: np.ndarray,
                   predictions: np.ndarray) -> List[float]:
  rows = decile_table(labels, predictions)
  return [v for row in rows for v in (row['mean_prediction'],
                                      row['mean_label'])]


def _feature_prediction_values(labels: np.ndarray,
                               predictions: np.ndarray) -> List[float]:
  summary = regression_summary(labels, predictions)
  return ([summary[stat] for stat in REGRESSION_STATS] +
          _gini_values(labels, predictions) +
          _decile_values(labels, predictions))


def _feature_as_prediction(
    element: metric_types.StandardMetricInputs, feature: str,
    model_name: str, output_name: str) -> metric_types.StandardMetricInputs:
  """Returns a copy of `element` whose prediction for the model/output is
  the value of `feature`, nested the way model predictions are so that
  `to_label_prediction_example_weight` reads it like one.

  Raises:
    ValueError: If the example has no value, or more than one, for `feature`.
  """
  value = (element.get(constants.FEATURES_KEY) or {}).get(feature)
  if value is None or np.size(value) == 0:
    raise ValueError(
        f'FeaturePredictionMetrics: an evaluated example has no value for '
        f'feature {feature!r} (got {value!r}). Every example must carry '
        f'exactly one {feature!r} value; check the feature name and that the '
        f'examples (and the schema, if one is used) include it.')
  value = np.asarray(value)
  if value.size != 1:
    raise ValueError(
        f'FeaturePredictionMetrics: feature {feature!r} must hold one value '
        f'per example, got {value.size}: {value!r}')
  prediction = value.reshape((1,))
  if output_name:
    prediction = {output_name: prediction}
  if model_name:
    prediction = {model_name: prediction}
  inputs = metric_types.StandardMetricInputs(dict(element))
  inputs[constants.PREDICTIONS_KEY] = prediction
  return inputs


class _LabelPredictionAccumulator:
  """Collected labels and predictions of one slice."""
  __slots__ = ['labels', 'predictions']

  def __init__(self):
    self.labels = []
    self.predictions = []


class _LabelPredictionCombiner(beam.CombineFn):
  """Collects the (label, prediction) pairs of one model output.

  The label is read as for any TFMA metric (model and output name, label
  keys, sub key). The prediction is the model output, or with `feature` set
  the value of that feature of the example. `values_fn` turns the collected
  pairs into one value per key, in the order of `keys`.
  """

  def __init__(self, keys: List[metric_types.MetricKey], values_fn: ValuesFn,
               eval_config: Optional[tfma.EvalConfig],
               aggregation_type: Optional[metric_types.AggregationType],
               class_weights: Optional[Dict[int, float]],
               feature: Optional[str] = None):
    self._keys = keys
    self._values_fn = values_fn
    self._eval_config = eval_config
    self._aggregation_type = aggregation_type
    self._class_weights = class_weights
    self._feature = feature

  def __repr__(self) -> str:
    # TFMA names the combiner in the RuntimeError wrapping its errors.
    key = self._keys[0]
    return (f'{type(self).__name__}(first_key={key.name!r}, '
            f'model_name={key.model_name!r}, '
            f'output_name={key.output_name!r}, feature={self._feature!r})')

  def create_accumulator(self) -> _LabelPredictionAccumulator:
    return _LabelPredictionAccumulator()

  def add_input(
      self, accumulator: _LabelPredictionAccumulator,
      element: metric_types.StandardMetricInputs
  ) -> _LabelPredictionAccumulator:
    key = self._keys[0]
    if self._feature is not None:
      element = _feature_as_prediction(element, self._feature, key.model_name,
                                       key.output_name)
    for label, prediction, _ in metric_util.to_label_prediction_example_weight(
        element,
        eval_config=self._eval_config,
        model_name=key.model_name,
        output_name=key.output_name,
        sub_key=key.sub_key,
        aggregation_type=self._aggregation_type,
        class_weights=self._class_weights,
        example_weighted=key.example_weighted):
      accumulator.labels.append(label.item())
      accumulator.predictions.append(prediction.item())
    return accumulator

  def merge_accumulators(
      self, accumulators: Iterable[_LabelPredictionAccumulator]
  ) -> _LabelPredictionAccumulator:
    accumulators = iter(accumulators)
    result = next(accumulators)
    for accumulator in accumulators:
      result.labels.extend(accumulator.labels)
      result.predictions.extend(accumulator.predictions)
    return result

  def extract_output(
      self, accumulator: _LabelPredictionAccumulator
  ) -> Dict[metric_types.MetricKey, float]:
    values = self._values_fn(
        np.asarray(accumulator.labels, dtype=np.float64),
        np.asarray(accumulator.predictions, dtype=np.float64))
    assert len(values) == len(self._keys), (len(values), len(self._keys))
    return dict(zip(self._keys, values))


def _computations_fn(
    metric_names: Callable[[str], List[str]],
    values_fn: ValuesFn) -> Callable[..., metric_types.MetricComputations]:
  """Returns a create-computations function run once per model/output key.

  The metric names are `metric_names(prefix)` when the metric has a `prefix`
  argument, else `metric_names(name)`; with a `feature` argument the
  prediction is read from that feature.
  """

  def create_computations(
      name: str,
      eval_config: Optional[tfma.EvalConfig] = None,
      model_name: str = '',
      output_name: str = '',
      sub_key: Optional[metric_types.SubKey] = None,
      aggregation_type: Optional[metric_types.AggregationType] = None,
      class_weights: Optional[Dict[int, float]] = None,
      example_weighted: bool = False,
      feature: Optional[str] = None,
      prefix: Optional[str] = None) -> metric_types.MetricComputations:
    keys = [
        metric_types.MetricKey(
            name=metric_name,
            model_name=model_name,
            output_name=output_name,
            sub_key=sub_key,
            aggregation_type=aggregation_type,
            example_weighted=example_weighted)
        for metric_name in metric_names(name if prefix is None else prefix)
    ]
    return [
        metric_types.MetricComputation(
            keys=keys,
            preprocessors=(
                None if feature is None else
                [metric_types.FeaturePreprocessor(feature_keys=[feature])]),
            combiner=_LabelPredictionCombiner(keys, values_fn, eval_config,
                                              aggregation_type, class_weights,
                                              feature))
    ]

  return metric_util.merge_per_key_computations(create_computations)


class NormalizedGini(tfma.metrics.Metric):
  """Tie-consistent normalized Gini (see `normalized_gini`); key `name`."""

  def __init__(self, name: str = NORMALIZED_GINI_NAME):
    """Initializes the metric.

    Args:
      name: Metric name (default 'normalized_gini').
    """
    super().__init__(
        _computations_fn(_single_name, _gini_values), name=name)


class DecileTable(tfma.metrics.Metric):
  """Decile table (see `decile_table`) as 20 scalar metrics.

  Keys are `{name}_01_mean_prediction`, `{name}_01_mean_label`, ...,
  `{name}_10_mean_label`; decile 01 holds the highest predictions.
  """

  def __init__(self, name: str = DECILE_TABLE_NAME):
    """Initializes the metric.

    Args:
      name: Prefix of the metric names (default 'decile').
    """
    super().__init__(
        _computations_fn(decile_metric_names, _decile_values), name=name)


class FeaturePredictionMetrics(tfma.metrics.Metric):
  """Scores a prediction stored in a feature column against the label.

  For a predictor that is not a model output (e.g. a BTYD model's CLV written
  into the examples as `btyd_clv`), the prediction of each example is the
  value of `feature` and the label is the label of the model output the
  metric is configured for (MetricsSpec output_names / model_names,
  ModelSpec label_key(s)). Produces 26 scalar metrics under that
  model/output (see `feature_prediction_metric_names`):
  `{prefix}_example_count`, `{prefix}_mean_absolute_error`,
  `{prefix}_root_mean_squared_error`, `{prefix}_mean_prediction`,
  `{prefix}_mean_label`, `{prefix}_normalized_gini` and
  `{prefix}_decile_01_mean_prediction` ... `{prefix}_decile_10_mean_label`,
  computed with `regression_summary`, `normalized_gini` and `decile_table`.
  An example without the feature fails the evaluation with a ValueError
  naming it. Example weights are ignored.
  """

  def __init__(self,
               feature: str = 'btyd_clv',
               prefix: str = 'btyd',
               name: str = FEATURE_PREDICTION_METRICS_NAME):
    """Initializes the metric.

    Args:
      feature: Name of the feature holding the per-example prediction.
      prefix: Prefix of the metric names; must be non-empty and differ from
        the prefixes of other metrics on the same output.
      name: Name of the metric config (not a metric key).
    """
    if not feature:
      raise ValueError('FeaturePredictionMetrics: feature must be non-empty')
    if not prefix:
      raise ValueError('FeaturePredictionMetrics: prefix must be non-empty')
    super().__init__(
        _computations_fn(feature_prediction_metric_names,
                         _feature_prediction_values),
        feature=feature,
        prefix=prefix,
        name=name)


def classifier_eval_config(prediction: str, baseline_prediction: str, label: str, min_auc: float,
                           max_auc_decrease: float, slicing_specs: List[tfma.SlicingSpec]) -> tfma.EvalConfig:
  """Candidate vs latest blessed model: ExampleCount, AUC, PR-AUC, binary cross-entropy, calibration, mean label
  and prediction of the output `prediction` (gated: AUC at least `min_auc` and at most `max_auc_decrease` below
  the blessed model's) and, for the candidate only, of the baseline output `baseline_prediction` on the same
  examples; both against `label`."""
  def metrics() -> List[tfma.MetricConfig]:
    return [tfma.MetricConfig(class_name=name) for name in (
        'ExampleCount', 'AUC', 'AUCPrecisionRecall', 'BinaryCrossentropy', 'Calibration', 'MeanLabel',
        'MeanPrediction')]
  gated = metrics()
  for metric in gated:
    if metric.class_name == 'AUC':
      metric.per_slice_thresholds.add(slicing_specs=[tfma.SlicingSpec()], threshold=tfma.MetricThreshold(
          value_threshold=tfma.GenericValueThreshold(lower_bound={'value': min_auc}),
          change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                                       absolute={'value': -max_auc_decrease})))
  label_keys = {prediction: label, baseline_prediction: label}
  return tfma.EvalConfig(
      model_specs=[
          tfma.ModelSpec(name='candidate', signature_name='serving_default', label_keys=label_keys),
          tfma.ModelSpec(name='baseline', signature_name='serving_default', label_keys=label_keys,
                         is_baseline=True),
      ],
      slicing_specs=slicing_specs,
      options=tfma.Options(include_default_metrics=wrappers_pb2.BoolValue(value=False)),
      metrics_specs=[
          tfma.MetricsSpec(metrics=gated, output_names=[prediction]),
          tfma.MetricsSpec(metrics=metrics(), output_names=[baseline_prediction], model_names=['candidate']),
      ])
