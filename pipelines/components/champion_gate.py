"""ChampionGate: blesses the model only when the Evaluator blessed it and it beats every baseline scored in the
same TFMA evaluation on the primary metric (pipelines.champion); Pusher and scoring read its blessing."""
import json
from typing import Mapping, Tuple

from tfx import v1 as tfx
from tfx.dsl.components.base.base_component import BaseComponent

from pipelines import champion as champion_rule
from pipelines import report, runners

_standard = tfx.types.standard_artifacts


@tfx.dsl.components.component
def ChampionGate(  # pylint: disable=invalid-name
    model: tfx.dsl.components.InputArtifact[_standard.Model],
    evaluation: tfx.dsl.components.InputArtifact[_standard.ModelEvaluation],
    evaluator_blessing: tfx.dsl.components.InputArtifact[_standard.ModelBlessing],
    blessing: tfx.dsl.components.OutputArtifact[_standard.ModelBlessing],
    primary_metric: tfx.dsl.components.Parameter[str],
    higher_is_better: tfx.dsl.components.Parameter[int],
    model_name: tfx.dsl.components.Parameter[str],
    candidates: tfx.dsl.components.Parameter[str],
    code_version: tfx.dsl.components.Parameter[str] = '') -> None:
  """`candidates`: JSON {name: [TFMA model name, output name, metric-key prefix]} (registry's reported_models
  form), the model under `model_name` among them."""
  del code_version  # in the cache key only
  metrics, _ = report.evaluation_metrics(evaluation.uri, {k: tuple(v) for k, v in json.loads(candidates).items()})
  values = {name: values.get(primary_metric, float('nan')) for name, values in metrics.items()}
  chosen = champion_rule.choose(primary_metric, bool(higher_is_better), model_name, values)
  evaluator_blessed = evaluator_blessing.get_int_custom_property('blessed') == 1
  champion_rule.bless(blessing, model, chosen, evaluator_blessed)


def champion_gate(model: tfx.dsl.Channel, evaluator: BaseComponent, primary_metric: str, higher_is_better: bool,
                  model_name: str, candidates: Mapping[str, Tuple[str, str, str]]) -> BaseComponent:
  """The gate after `evaluator` (a TFX Evaluator): its `blessing` output replaces the Evaluator's."""
  if model_name not in candidates:
    raise ValueError(f'the model {model_name!r} is not among the candidates {", ".join(candidates)}')
  return ChampionGate(model=model, evaluation=evaluator.outputs['evaluation'],
                      evaluator_blessing=evaluator.outputs['blessing'], primary_metric=primary_metric,
                      higher_is_better=int(higher_is_better), model_name=model_name,
                      candidates=json.dumps({k: list(v) for k, v in candidates.items()}, sort_keys=True),
                      code_version=runners.code_version(__name__, champion_rule.__name__))
