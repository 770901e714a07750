"""RecommendationsExport: the champion's top-k per user -> recommendations CSV.

One row per (user, rank): user_name,rank,track_id,score,predicted_by (rank 1 = best), k rows per user in the
vocabulary. When the ChampionGate blessed the model, the rows are BulkInferrer's PredictionLogs of the top-k
signature (predicted_by two_tower); otherwise (popularity won, or the Evaluator refused the model) BulkInferrer
wrote nothing and the rows are popularity's: the tracks with the most training listens, the user's training tracks
left out when `exclude_training_tracks` is on, score = training listens (predicted_by popularity). Users outside
the vocabulary get no rows; they are counted (`fallback_users`). The file is named predictions-00000-of-00001.csv
in the output artifact, the name the run report publishes from.
"""
import collections
import csv
import os
from typing import Dict, Iterator, List, Sequence, Set, Tuple

import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_serving.apis import prediction_log_pb2
from tfx import v1 as tfx

from modules import recommender as module
from pipelines import artifacts, beam_io
from pipelines.components.predictions_export import PREDICTIONS_PREFIX, Predictions

HEADER = ['user_name', 'rank', 'track_id', 'score', 'predicted_by']


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
  for record in artifacts.read_records(os.path.join(inference_uri, '*.gz')):
    yield prediction_log_pb2.PredictionLog.FromString(record)


def popularity_top_k(users: Sequence[str], known: Set[str], train: Sequence[Tuple[str, str, float]], k: int,
                     exclude_training: bool) -> List[Tuple[str, bool, List[Tuple[str, float]]]]:
  """(user, is_fallback, [(track, training listens)] best first) per user, as recommendation_rows gives them: the
  k tracks with the most training listens (ties: track id), without the user's own training tracks when
  `exclude_training`; users not in `known` (the vocabulary) are fallbacks. train: (user, track, count)."""
  listens: Dict[str, float] = collections.defaultdict(float)
  listened: Dict[str, Set[str]] = collections.defaultdict(set)
  for user, track, count in train:
    listens[track] += count
    listened[user].add(track)
  ranked = sorted(listens, key=lambda t: (-listens[t], t))
  out = []
  for user in users:
    skip = listened[user] if exclude_training else set()
    top = [t for t in ranked[:k + len(skip)] if t not in skip][:k]
    out.append((user, user not in known, [(t, listens[t]) for t in top]))
  return out


@tfx.dsl.components.component
def RecommendationsExport(  # pylint: disable=invalid-name
    inference_result: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.InferenceResult],
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    user_examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    transform_graph: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.TransformGraph],
    blessing: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ModelBlessing],
    predictions: tfx.dsl.components.OutputArtifact[Predictions],
    top_k: tfx.dsl.components.Parameter[int] = 10,
    exclude_training_tracks: tfx.dsl.components.Parameter[str] = 'on',
    code_version: tfx.dsl.components.Parameter[str] = '') -> None:
  """Writes the recommendations CSV (see the module docstring), users in name order. examples: the
  VocabularyFilter's output (training pairs); user_examples: the ExamplesBuilder's (split `users`); blessing: the
  ChampionGate's."""
  del code_version
  blessed = blessing.get_int_custom_property('blessed') == 1
  if blessed:
    users = sorted(recommendation_rows(log) for log in read_logs(inference_result.uri))
    method = 'two_tower'
  else:
    vocabulary = {v.decode() if isinstance(v, bytes) else v
                  for v in tft.TFTransformOutput(transform_graph.uri).vocabulary_by_name(module.USER_VOCAB)}
    train = [(str(r[module.USER]), str(r[module.TRACK]), float(r[module.COUNT]))
             for r in (beam_io.serialized_example_to_row(s) for s in artifacts.read_split(examples.uri, 'train'))]
    names = sorted(str(beam_io.serialized_example_to_row(s)[module.USER])
                   for s in artifacts.read_split(user_examples.uri, module.USERS_SPLIT))
    users = popularity_top_k(names, vocabulary, train, top_k, exclude_training_tracks == 'on')
    method = 'popularity'
  rows_out = 0
  with tf.io.gfile.GFile(os.path.join(predictions.uri, f'{PREDICTIONS_PREFIX}-00000-of-00001.csv'), 'w') as f:
    writer = csv.writer(f, lineterminator='\n')
    writer.writerow(HEADER)
    for user, fallback, ranked in users:
      if fallback:
        continue
      for rank, (track, score) in enumerate(ranked, start=1):
        writer.writerow([user, rank, track, f'{score:.6f}', method])
        rows_out += 1
  predictions.set_int_custom_property('rows_out', rows_out)
  predictions.set_int_custom_property('users', sum(1 for _, fallback, _ in users if not fallback))
  predictions.set_int_custom_property('fallback_users', sum(1 for _, fallback, _ in users if fallback))
  predictions.set_int_custom_property('model_blessed', int(blessed))
  predictions.set_string_custom_property('predicted_by', method)
