"""VocabularyFilter: keeps the (user, track) pairs whose user and track are in the Transform's vocabularies.

The vocabularies (TFT assets of the transform graph, frequency thresholds applied on the training pairs) decide
which users and tracks the model knows; pairs outside them cannot be scored and are left out of the evaluation.
Writes the kept pairs of each split as an Examples artifact (GZIP tf.Example TFRecords, like ExampleGen) and
counts per split (`kept/<split>`, `out_of_vocabulary/<split>`) as custom properties and counts.json.
"""
import json
import os
from typing import Dict, List

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx.types import artifact_utils

from modules import recommender as module
from pipelines import artifacts, beam_io


def in_vocabulary(rows: List[Dict], users: set, tracks: set) -> List[bool]:
  """Whether each pair's user and track are both in the vocabularies."""
  return [str(r[module.USER]) in users and str(r[module.TRACK]) in tracks for r in rows]


@tfx.dsl.components.component
def VocabularyFilter(  # pylint: disable=invalid-name
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    transform_graph: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.TransformGraph],
    filtered: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Examples],
    code_version: tfx.dsl.components.Parameter[str] = '') -> None:
  """Pairs of train/eval/test whose user and track are in the vocabularies (see the module docstring);
  code_version: a hash of this code, so a change invalidates the cache."""
  del code_version
  output = tft.TFTransformOutput(transform_graph.uri)
  users = {v.decode() if isinstance(v, bytes) else v for v in output.vocabulary_by_name(module.USER_VOCAB)}
  tracks = {v.decode() if isinstance(v, bytes) else v for v in output.vocabulary_by_name(module.TRACK_VOCAB)}
  filtered.split_names = artifact_utils.encode_split_names(list(module.SPLITS))
  counts = {}
  for split in module.SPLITS:
    serialized = list(artifacts.read_split(examples.uri, split))
    rows = [beam_io.serialized_example_to_row(s) for s in serialized]
    keep = in_vocabulary(rows, users, tracks)
    directory = artifact_utils.get_split_uri([filtered], split)
    tf.io.gfile.makedirs(directory)
    with tf.io.TFRecordWriter(os.path.join(directory, 'data_tfrecord-00000-of-00001.gz'),
                              options=tf.io.TFRecordOptions(compression_type='GZIP')) as writer:
      for record, kept in zip(serialized, keep):
        if kept:
          writer.write(record)
    counts[f'kept/{split}'] = sum(keep)
    counts[f'out_of_vocabulary/{split}'] = len(keep) - sum(keep)
  for name, value in counts.items():
    filtered.set_int_custom_property(name, value)
  with tf.io.gfile.GFile(os.path.join(filtered.uri, beam_io.COUNTS_FILE), 'w') as f:
    json.dump(counts, f, sort_keys=True)
