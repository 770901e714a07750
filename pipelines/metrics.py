"""Custom TFMA metrics for value models: normalized Gini and a decile table.

Usage in an EvalConfig::

    tfma.MetricConfig(class_name='NormalizedGini', module='pipelines.metrics')
    tfma.MetricConfig(class_name='DecileTable', module='pipelines.metrics')

Both metrics are non-decomposable: their combiner collects every
(label, prediction) pair of a slice and computes the result at the end.
Example weights are ignored.
"""
from typing import Callable, Dict, Iterable, List, Optional, Type, Union

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util

NORMALIZED_GINI_NAME = 'normalized_gini'
DECILE_TABLE_NAME = 'decile'
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


class _LabelPredictionAccumulator:
  """Collected labels and predictions of one slice."""
  __slots__ = ['labels', 'predictions']

  def __init__(self):
    self.labels = []
    self.predictions = []


class _LabelPredictionCombiner(beam.CombineFn):
  """Collects the (label, prediction) pairs of one model output.

  Subclasses name their metrics in `metric_names` and compute one value per
  name in `extract_output`.
  """

  @staticmethod
  def metric_names(name: str) -> List[str]:
    """Returns the metric names computed for the metric called `name`."""
    raise NotImplementedError

  def __init__(self, keys: List[metric_types.MetricKey],
               eval_config: Optional[tfma.EvalConfig],
               aggregation_type: Optional[metric_types.AggregationType],
               class_weights: Optional[Dict[int, float]]):
    self._keys = keys
    self._eval_config = eval_config
    self._aggregation_type = aggregation_type
    self._class_weights = class_weights

  def create_accumulator(self) -> _LabelPredictionAccumulator:
    return _LabelPredictionAccumulator()

  def add_input(
      self, accumulator: _LabelPredictionAccumulator,
      element: metric_types.StandardMetricInputs
  ) -> _LabelPredictionAccumulator:
    key = self._keys[0]
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


class _NormalizedGiniCombiner(_LabelPredictionCombiner):
  """Computes normalized Gini from the collected pairs."""

  @staticmethod
  def metric_names(name: str) -> List[str]:
    return [name]

  def extract_output(
      self, accumulator: _LabelPredictionAccumulator
  ) -> Dict[metric_types.MetricKey, float]:
    return {
        self._keys[0]:
            normalized_gini(accumulator.labels, accumulator.predictions)
    }


class _DecileTableCombiner(_LabelPredictionCombiner):
  """Computes per-decile mean prediction and mean label."""

  @staticmethod
  def metric_names(name: str) -> List[str]:
    return decile_metric_names(name)

  def extract_output(
      self, accumulator: _LabelPredictionAccumulator
  ) -> Dict[metric_types.MetricKey, float]:
    rows = decile_table(accumulator.labels, accumulator.predictions)
    values = [v for row in rows for v in (row['mean_prediction'],
                                          row['mean_label'])]
    return dict(zip(self._keys, values))


def _computations_fn(
    combiner_cls: Type[_LabelPredictionCombiner]
) -> Callable[..., metric_types.MetricComputations]:
  """Returns a create-computations function run once per model/output key."""

  def create_computations(
      name: str,
      eval_config: Optional[tfma.EvalConfig] = None,
      model_name: str = '',
      output_name: str = '',
      sub_key: Optional[metric_types.SubKey] = None,
      aggregation_type: Optional[metric_types.AggregationType] = None,
      class_weights: Optional[Dict[int, float]] = None,
      example_weighted: bool = False) -> metric_types.MetricComputations:
    keys = [
        metric_types.MetricKey(
            name=metric_name,
            model_name=model_name,
            output_name=output_name,
            sub_key=sub_key,
            aggregation_type=aggregation_type,
            example_weighted=example_weighted)
        for metric_name in combiner_cls.metric_names(name)
    ]
    return [
        metric_types.MetricComputation(
            keys=keys,
            preprocessors=None,
            combiner=combiner_cls(keys, eval_config, aggregation_type,
                                  class_weights))
    ]

  return metric_util.merge_per_key_computations(create_computations)


class NormalizedGini(tfma.metrics.Metric):
  """Tie-consistent normalized Gini (see `normalized_gini`); key `name`."""

  def __init__(self, name: str = NORMALIZED_GINI_NAME):
    """Initializes the metric.

    Args:
      name: Metric name (default 'normalized_gini').
    """
    super().__init__(_computations_fn(_NormalizedGiniCombiner), name=name)


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
    super().__init__(_computations_fn(_DecileTableCombiner), name=name)
