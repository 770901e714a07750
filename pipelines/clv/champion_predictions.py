"""ChampionPredictions: predictions.csv holds the champion's predictions, each row saying which method made it.

When the ChampionGate blessed the DNN, its rows (from the DNN's PredictionsExport) are copied with
`predicted_by=dnn`. Otherwise the DNN is neither pushed nor scored, and every scored customer gets the best
baseline's prediction: BTYD's `btyd_clv` (`predicted_by=btyd`) or the training mean (`predicted_by=baseline`),
read from the score examples BtydFit wrote. The `btyd_*` columns are kept in both cases.
"""
import csv
import io
import math
import os
from typing import Dict, List

import tensorflow as tf
from tfx import v1 as tfx

from pipelines import champion as champion_rule
from pipelines import report
from pipelines.components.predictions_export import PREDICTIONS_PREFIX, Predictions

OUTPUT_FILE = f'{PREDICTIONS_PREFIX}-00000-of-00001.csv'
PREDICTED_BY = 'predicted_by'


def baseline_rows(rows: List[Dict[str, float]], key: str, method: str, mean: float, prediction: str,
                  btyd_prediction: str, carry: List[str]) -> List[Dict[str, object]]:
  """Output rows of a baseline champion `method` ('btyd' or 'baseline', the training mean) for score rows."""
  out = []
  for row in rows:
    value = row[btyd_prediction] if method == 'btyd' else mean
    out.append({key: row[key], prediction: float(value), PREDICTED_BY: method, **{c: row[c] for c in carry}})
  return out


def best_baseline(champion: champion_rule.Champion) -> str:
  """The best baseline on the champion's metric (for a model that won but was refused by the Evaluator)."""
  sign = 1.0 if champion.higher_is_better else -1.0
  finite = {n: v for n, v in champion.values.items() if n != champion.model and math.isfinite(v)}
  if not finite:
    raise ValueError(f'no baseline has a {champion.metric} to fall back on: {champion.values}')
  return max(finite, key=lambda name: sign * finite[name])


def _read_dnn_rows(uri: str) -> List[Dict[str, str]]:
  rows: List[Dict[str, str]] = []
  for shard in sorted(tf.io.gfile.glob(os.path.join(uri, f'{PREDICTIONS_PREFIX}*.csv'))):
    with tf.io.gfile.GFile(shard) as f:
      rows.extend(csv.DictReader(io.StringIO(f.read())))
  return rows


@tfx.dsl.components.component
def ChampionPredictions(  # pylint: disable=invalid-name
    dnn_predictions: tfx.dsl.components.InputArtifact[Predictions],
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    evaluation: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ModelEvaluation],
    blessing: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    predictions: tfx.dsl.components.OutputArtifact[Predictions],
    key_feature: tfx.dsl.components.Parameter[str],
    prediction_name: tfx.dsl.components.Parameter[str],
    btyd_prediction: tfx.dsl.components.Parameter[str],
    carry_features: tfx.dsl.components.Parameter[str],
    code_version: tfx.dsl.components.Parameter[str] = '') -> None:
  """Writes the champion's predictions of the `score` split as one CSV (key, prediction, predicted_by, carry).

  dnn_predictions: the DNN's export (rows only when the gate blessed it); examples: BtydFit's predictions
  (split `score`); evaluation: the Evaluator's (the training mean is the mean baseline's mean prediction);
  blessing: the ChampionGate's (champion.json). carry_features: comma-separated columns copied to each row.
  """
  del code_version  # in the cache key only
  from pipelines.clv import btyd  # pylint: disable=g-import-not-at-top
  from pipelines import beam_io  # pylint: disable=g-import-not-at-top
  carry = [c for c in carry_features.split(',') if c]
  champion = champion_rule.read(blessing.uri)
  if champion is None:
    raise ValueError(f'no {champion_rule.CHAMPION_JSON} in the blessing {blessing.uri}')
  if blessing.get_int_custom_property('blessed') == 1:
    rows = [{**{k: v for k, v in row.items() if k != PREDICTED_BY}, PREDICTED_BY: champion.model}
            for row in _read_dnn_rows(dnn_predictions.uri)]
    method = champion.model
  else:  # the model lost (or the Evaluator refused it): the best baseline serves
    method = champion.winner if champion.winner != champion.model else best_baseline(champion)
    metrics, _ = report.evaluation_metrics(evaluation.uri, {'baseline': ('candidate', 'mean_baseline', '')})
    mean = metrics.get('baseline', {}).get('mean_prediction', float('nan'))
    score = [beam_io.example_to_row(e) for e in btyd.read_examples(examples, 'score')]
    rows = baseline_rows(score, key_feature, method, mean, prediction_name, btyd_prediction, carry)
  header = [key_feature, prediction_name, PREDICTED_BY] + carry
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=header, extrasaction='ignore', lineterminator='\n')
  writer.writeheader()
  writer.writerows(rows)
  with tf.io.gfile.GFile(os.path.join(predictions.uri, OUTPUT_FILE), 'w') as f:
    f.write(buffer.getvalue())
  predictions.set_int_custom_property('rows_out', len(rows))
  predictions.set_string_custom_property(PREDICTED_BY, method)
