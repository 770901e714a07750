"""PredictionsExport: BulkInferrer's PredictionLogs -> keyed CSV files, with rows counted (Beam).

Each PredictionLog of a Predict signature carries the serialized input tf.Example (from which the key
feature is read, so keys travel through BulkInferrer untouched) and the named output tensors. The CSV has
the key column, the chosen outputs, then any `carry_features` copied from the input example (e.g. another
model's prediction columns), one row per scored example, in `num_shards` files named
`predictions-SSSSS-of-NNNNN.csv` in the output artifact. `counts.json` records `rows_out`.
When the model was not blessed, BulkInferrer writes nothing; the export then writes a header-only file and
records `model_blessed: 0`, so the report can say why there are no predictions.
"""
import csv
import io
import json
import os
from typing import Any, Dict, List, Optional

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tensorflow_serving.apis import prediction_log_pb2
from tfx import types
from tfx.dsl.components.base import base_beam_component, base_beam_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from pipelines.components import beam_io

PREDICTIONS_PREFIX = 'predictions'


class Predictions(types.Artifact):
  """Keyed prediction files (CSV shards) written by PredictionsExport."""
  TYPE_NAME = 'marketing_ml.Predictions'  # namespace.Name: KFP v2 requires it


class PredictionsExportSpec(types.ComponentSpec):
  """PredictionsExport component spec."""
  PARAMETERS = {
      'key_feature': ExecutionParameter(type=str),
      'output_names': ExecutionParameter(type=str),
      'carry_features': ExecutionParameter(type=str),
      'num_shards': ExecutionParameter(type=int),
  }
  INPUTS = {'inference_result': ChannelParameter(type=standard_artifacts.InferenceResult)}
  OUTPUTS = {'predictions': ChannelParameter(type=Predictions)}


def prediction_row(log: prediction_log_pb2.PredictionLog, key_feature: str, output_names: List[str],
                   carry_features: List[str]) -> List[Any]:
  """[key, output_1, ..., carried_1, ...] from one PredictionLog of a Predict signature whose one input is
  the serialized tf.Example."""
  request = log.predict_log.request
  serialized = next(iter(request.inputs.values())).string_val[0]
  example = beam_io.example_to_row(tf.train.Example.FromString(serialized))
  outputs = log.predict_log.response.outputs
  missing = [name for name in output_names if name not in outputs] + [
      name for name in [key_feature] + carry_features if name not in example]
  if missing:
    raise ValueError(f'PredictionLog lacks {missing}: model outputs {sorted(outputs)}, '
                     f'input features {sorted(example)}')
  return ([example[key_feature]] + [tf.make_ndarray(outputs[name]).reshape(-1)[0].item() for name in output_names]
          + [example[name] for name in carry_features])


def _csv_line(values: List[Any]) -> str:
  buffer = io.StringIO()
  csv.writer(buffer, lineterminator='').writerow(values)
  return buffer.getvalue()


class Executor(base_beam_executor.BaseBeamExecutor):
  """Reads PredictionLogs, writes CSV shards and counts."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    inference_result = artifact_utils.get_single_instance(input_dict['inference_result'])
    predictions = artifact_utils.get_single_instance(output_dict['predictions'])
    key_feature = exec_properties['key_feature']
    output_names = json.loads(exec_properties['output_names'])
    carry_features = json.loads(exec_properties['carry_features'])
    header = ','.join([key_feature] + output_names + carry_features)
    pattern = os.path.join(inference_result.uri, '*.gz')
    blessed = bool(tf.io.gfile.glob(pattern))
    with self._make_beam_pipeline() as pipeline:
      if blessed:
        rows = (pipeline
                | 'ReadLogs' >> beam.io.ReadFromTFRecord(
                    pattern, coder=beam.coders.ProtoCoder(prediction_log_pb2.PredictionLog))
                | 'ToRow' >> beam.Map(prediction_row, key_feature, output_names, carry_features))
      else:
        logging.warning('No prediction logs in %s: the model was not blessed, nothing was scored.',
                        inference_result.uri)
        rows = pipeline | 'NoRows' >> beam.Create([])
      _ = (rows
           | 'ToCsv' >> beam.Map(_csv_line)
           | 'WriteCsv' >> beam.io.WriteToText(os.path.join(predictions.uri, PREDICTIONS_PREFIX),
                                               file_name_suffix='.csv', header=header,
                                               num_shards=exec_properties['num_shards']))
      _ = (rows | 'CountRows' >> beam.Map(lambda _: ('rows_out', 1))
           | 'WriteCounts' >> beam_io.WriteCounts(predictions.uri))
    counts = beam_io.read_counts(predictions.uri)
    predictions.set_int_custom_property('rows_out', counts.get('rows_out', 0))
    predictions.set_int_custom_property('model_blessed', int(blessed))
    logging.info('PredictionsExport wrote %d rows to %s', counts.get('rows_out', 0), predictions.uri)


class PredictionsExport(base_beam_component.BaseBeamComponent):
  """Exports BulkInferrer output as keyed CSV files (see module docstring)."""

  SPEC_CLASS = PredictionsExportSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

  def __init__(self, inference_result: types.BaseChannel, key_feature: str, output_names: List[str],
               carry_features: Optional[List[str]] = None, num_shards: int = 1):
    """Args: inference_result (BulkInferrer output), key_feature (carried from the input example),
    output_names (signature outputs to write, in order), carry_features (input features to copy after the
    outputs), num_shards (CSV files)."""
    super().__init__(spec=PredictionsExportSpec(
        inference_result=inference_result, key_feature=key_feature, output_names=json.dumps(output_names),
        carry_features=json.dumps(carry_features or []), num_shards=num_shards,
        predictions=types.Channel(type=Predictions)))
