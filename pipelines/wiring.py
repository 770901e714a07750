"""Pipeline wiring every use case shares: data validation that stops the run, the latest blessed model as
the Evaluator's baseline, and pushing a blessed model. Each use case's create_pipeline stays readable top
to bottom and spells out only what is its own."""
from typing import Any, Dict, NamedTuple, Optional, Sequence

from tfx import v1 as tfx
from tfx.dsl.components.base.base_component import BaseComponent

from pipelines.components.anomalies_gate import AnomaliesGate

CHAMPION_GATE_ID = 'ChampionGate'  # the node whose blessing Pusher, scoring and the resolver read


class DataValidation(NamedTuple):
  """StatisticsGen -> SchemaGen -> ExampleValidator -> AnomaliesGate, in pipeline order (unpack it into the
  component list); `gate` must run before Transform."""
  statistics_gen: BaseComponent
  schema_gen: BaseComponent
  example_validator: BaseComponent
  gate: BaseComponent

  @property
  def schema(self) -> tfx.dsl.Channel:
    """The inferred schema."""
    return self.schema_gen.outputs['schema']


def data_validation(examples: tfx.dsl.Channel, schema_exclude_splits: Sequence[str],
                    validation_exclude_splits: Sequence[str] = ()) -> DataValidation:
  """Statistics of every split; a schema inferred from the splits not in `schema_exclude_splits` (the
  training split); the splits not in `validation_exclude_splits` checked against it; and a gate that fails
  the run naming each anomaly (ExampleValidator alone only records them)."""
  statistics_gen = tfx.components.StatisticsGen(examples=examples)
  schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs['statistics'],
                                        exclude_splits=list(schema_exclude_splits))
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs['statistics'], schema=schema_gen.outputs['schema'],
      exclude_splits=list(validation_exclude_splits))
  return DataValidation(statistics_gen, schema_gen, example_validator,
                        AnomaliesGate(anomalies=example_validator.outputs['anomalies']))


def latest_blessed_model() -> BaseComponent:
  """A Resolver giving the latest model the ChampionGate blessed (none on a first run): the Evaluator's baseline.
  Only the gate's blessings count: the Evaluator also blesses a model that then loses to a baseline."""
  return tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
      model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing,
                                     producer_component_id=CHAMPION_GATE_ID, output_key='blessing'),
  ).with_id('latest_blessed_model_resolver')


def pusher(model: tfx.dsl.Channel, blessing: tfx.dsl.Channel, serving_dir: str) -> BaseComponent:
  """Pushes the model to `serving_dir` (local or gs://) only when the Evaluator blessed it."""
  return tfx.components.Pusher(
      model=model, model_blessing=blessing,
      push_destination=tfx.proto.PushDestination(
          filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)))


def bulk_inferrer(examples: tfx.dsl.Channel, model: tfx.dsl.Channel, blessing: tfx.dsl.Channel, split: str,
                  signature: str) -> BaseComponent:
  """BulkInferrer scoring `split` of `examples` with `model`'s `signature`, only when `blessing` (the
  ChampionGate's) says the model won: otherwise it writes nothing and the use case outputs its baseline."""
  return tfx.components.BulkInferrer(
      examples=examples, model=model, model_blessing=blessing,
      data_spec=tfx.proto.DataSpec(example_splits=[split]),
      model_spec=tfx.proto.ModelSpec(model_signature_name=[signature]))


def transform(module: str, examples: tfx.dsl.Channel, validation: DataValidation, version: str) -> BaseComponent:
  """Transform with `<module>.preprocessing_fn`, analyzed on `train` and applied to `train` and `eval`, after
  the validation gate (`version`: the module code's hash, so a code change re-runs it)."""
  component = tfx.components.Transform(
      examples=examples, schema=validation.schema, preprocessing_fn=f'{module}.preprocessing_fn',
      splits_config=tfx.proto.SplitsConfig(analyze=['train'], transform=['train', 'eval']),
      custom_config={'code_version': version})
  component.add_upstream_node(validation.gate)
  return component


def tuner(module: str, transform_component: BaseComponent, schema: tfx.dsl.Channel, custom_config: Dict[str, Any],
          version: str) -> BaseComponent:
  """TFX's Tuner with `<module>.tuner_fn` (see pipelines.tuning) on the transformed `train` split, scored on
  `eval`; `custom_config` (the search's settings: trials, seed, defaults) and the code version reach tuner_fn."""
  return tfx.components.Tuner(
      tuner_fn=f'{module}.tuner_fn',
      examples=transform_component.outputs['transformed_examples'],
      transform_graph=transform_component.outputs['transform_graph'],
      schema=schema,
      train_args=tfx.proto.TrainArgs(splits=['train']),
      eval_args=tfx.proto.EvalArgs(splits=['eval']),
      custom_config={**custom_config, 'code_version': version})


def trainer(module: str, transform_component: BaseComponent, schema: tfx.dsl.Channel, hyperparameters: Dict[str, Any],
            version: str, tuned: Optional[BaseComponent] = None) -> BaseComponent:
  """Trainer with `<module>.run_fn` on the transformed `train` split (`eval` for validation); the
  hyperparameters and the code version reach run_fn as custom_config, and the best values of `tuned` (a Tuner),
  when given, as fn_args.hyperparameters (pipelines.tuning.tuned_values merges them)."""
  return tfx.components.Trainer(
      run_fn=f'{module}.run_fn',
      examples=transform_component.outputs['transformed_examples'],
      transform_graph=transform_component.outputs['transform_graph'],
      schema=schema,
      hyperparameters=tuned.outputs['best_hyperparameters'] if tuned is not None else None,
      train_args=tfx.proto.TrainArgs(splits=['train']),
      eval_args=tfx.proto.EvalArgs(splits=['eval']),
      custom_config={**hyperparameters, 'code_version': version})
