"""RecommendationsExport: BulkInferrer's PredictionLogs of the top-k signature -> recommendations CSV.

One row per (user, rank): user_name,rank,track_id,score (rank 1 = best), k rows per user in the vocabulary. Users
outside the vocabulary (the signature's is_fallback) get no rows; they are counted (`fallback_users`). The file is
named predictions-00000-of-00001.csv in the output artifact, the name the run report publishes from.
"""
import csv
import os
from typing import Iterator, List, Tuple

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
from tfx import v1 as tfx

from modules import recommender as module
from pipelines import beam_io
from pipelines.components.predictions_export import PREDICTIONS_PREFIX, Predictions

HEADER = ['user_name', 'rank', 'track_id', 'score']


def recommendation_rows(log: prediction_log_pb2.PredictionLog) -> Tuple[str, bool, List[Tuple[str, float]]]:
  """(user_name, is_fallback, [(track_id, score)] best first) from one PredictionLog of the top-k signature."""
  request = log.predict_log.request
  example = beam_io.serialized_example_to_row(next(iter(request.inputs.values())).string_val[0])
  outputs = log.predict_log.response.outputs
  tracks = [t.decode() for t in tf.make_ndarray(outputs[module.TOP_TRACKS]).reshape(-1)]
  scores = tf.make_ndarray(outputs[module.TOP_SCORES]).reshape(-1).tolist()
  fallback = bool(tf.make_ndarray(outputs[module.IS_FALLBACK]).reshape(-1)[0])
  return str(example[module.USER]), fallback, list(zip(tracks, scores))


def read_logs(inference_uri: str) -> Iterator[prediction_log_pb2.PredictionLog]:
  """Every PredictionLog BulkInferrer wrote (none when the model was not blessed)."""
  files = sorted(tf.io.gfile.glob(os.path.join(inference_uri, '*.gz')))
  if files:
    for record in tf.data.TFRecordDataset(files, compression_type='GZIP').as_numpy_iterator():
      yield prediction_log_pb2.PredictionLog.FromString(record)


@tfx.dsl.components.component
def RecommendationsExport(  # pylint: disable=invalid-name
    inference_result: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.InferenceResult],
    predictions: tfx.dsl.components.OutputArtifact[Predictions],
    code_version: tfx.dsl.components.Parameter[str] = '') -> None:
  """Writes the recommendations CSV (see the module docstring), users in name order."""
  del code_version
  users = sorted(recommendation_rows(log) for log in read_logs(inference_result.uri))
  rows_out = 0
  with tf.io.gfile.GFile(os.path.join(predictions.uri, f'{PREDICTIONS_PREFIX}-00000-of-00001.csv'), 'w') as f:
    writer = csv.writer(f, lineterminator='\n')
    writer.writerow(HEADER)
    for user, fallback, ranked in users:
      if fallback:
        continue
      for rank, (track, score) in enumerate(ranked, start=1):
        writer.writerow([user, rank, track, f'{score:.6f}'])
        rows_out += 1
  predictions.set_int_custom_property('rows_out', rows_out)
  predictions.set_int_custom_property('users', sum(1 for _, fallback, _ in users if not fallback))
  predictions.set_int_custom_property('fallback_users', sum(1 for _, fallback, _ in users if fallback))
  predictions.set_int_custom_property('model_blessed', int(bool(users)))
