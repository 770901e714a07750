"""RecommenderChampionGate (node id `ChampionGate`): the recommender's champion rule on the RecallEvaluator's
ranking metric, since recall@k does not come from TFMA.

The model (`two_tower`) is blessed only when the Evaluator blessed it (its AUC thresholds) and its
`primary_metric` (default recall_at_10, sampled protocol) is strictly above popularity's (pipelines.champion).
Pusher, BulkInferrer and RecommendationsExport read its `blessing`; champion.json sits in the blessing's uri.
"""
import json
import os

import tensorflow as tf
from tfx import v1 as tfx

from pipelines import champion as champion_rule
from pipelines.recommender.recall_evaluator import RECALL_JSON, RecallReport

MODEL = 'two_tower'
BASELINES = ('popularity',)


def choose(models: dict, primary_metric: str) -> champion_rule.Champion:
  """The champion among the model and BASELINES by `primary_metric` (higher is better) in recall.json's models."""
  values = {name: float(models.get(name, {}).get(primary_metric, float('nan'))) for name in (MODEL,) + BASELINES}
  return champion_rule.choose(primary_metric, True, MODEL, values)


@tfx.dsl.components.component
def RecommenderChampionGate(  # pylint: disable=invalid-name
    model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
    report: tfx.dsl.components.InputArtifact[RecallReport],
    evaluator_blessing: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    blessing: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    primary_metric: tfx.dsl.components.Parameter[str] = 'recall_at_10',
    code_version: tfx.dsl.components.Parameter[str] = '') -> None:
  """Blesses the model only if the Evaluator did and it beats popularity on `primary_metric` (module docstring)."""
  del code_version  # in the cache key only
  with tf.io.gfile.GFile(os.path.join(report.uri, RECALL_JSON)) as f:
    models = json.load(f)['models']
  evaluator_blessed = evaluator_blessing.get_int_custom_property('blessed') == 1
  champion_rule.bless(blessing, model, choose(models, primary_metric), evaluator_blessed)
