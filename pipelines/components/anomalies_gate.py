"""AnomaliesGate: stops the run when ExampleValidator found anomalies (TFX alone only records them)."""
import os
from typing import List

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils

ANOMALIES_FILE = 'SchemaDiff.pb'


def describe_anomalies(anomalies_uri: str, split_names: str) -> List[str]:
  """'split/feature: description' for every anomaly ExampleValidator wrote; empty if none."""
  found = []
  for split in artifact_utils.decode_split_names(split_names):
    path = os.path.join(anomalies_uri, f'Split-{split}', ANOMALIES_FILE)
    if not tf.io.gfile.exists(path):
      continue
    anomalies = anomalies_pb2.Anomalies.FromString(tf.io.gfile.GFile(path, 'rb').read())
    for feature, info in sorted(anomalies.anomaly_info.items()):
      found.append(f'{split}/{feature}: {info.short_description or info.description}')
    if anomalies.HasField('dataset_anomaly_info'):
      found.append(f'{split}: {anomalies.dataset_anomaly_info.description}')
  return found


@tfx.dsl.components.component
def AnomaliesGate(anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies]
                 ) -> None:  # pylint: disable=invalid-name
  """Raises with the list of anomalies, so components downstream of the gate do not run."""
  found = describe_anomalies(anomalies.uri, anomalies.split_names)
  if found:
    raise RuntimeError(f'ExampleValidator found {len(found)} anomalies: ' + '; '.join(found))
