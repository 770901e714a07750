"""Reading artifacts outside Beam, once for every use case: the GZIP TFRecord files TFX components write
(Examples splits, BulkInferrer's PredictionLogs), and the ML Metadata store of a local run."""
import os
from typing import Iterator, List, Sequence, Union

import tensorflow as tf


def split_files(examples_uri: str, split: str) -> List[str]:
  """The files of one split of an Examples artifact (`<uri>/Split-<split>/*`), sorted."""
  return sorted(tf.io.gfile.glob(os.path.join(examples_uri, f'Split-{split}', '*')))


def read_records(files: Union[str, Sequence[str]]) -> Iterator[bytes]:
  """Every record of GZIP TFRecord `files` (a list, or a glob pattern), in file order; none for no files."""
  paths = sorted(tf.io.gfile.glob(files)) if isinstance(files, str) else list(files)
  if paths:
    yield from tf.data.TFRecordDataset(paths, compression_type='GZIP').as_numpy_iterator()


def read_split(examples_uri: str, split: str) -> Iterator[bytes]:
  """The serialized tf.Examples of one split of an Examples artifact, in file order."""
  return read_records(split_files(examples_uri, split))


def metadata_store(metadata_path: str, read_only: bool = True):
  """The ML Metadata store of a local run (its sqlite file), read-only unless asked."""
  from ml_metadata import metadata_store as mlmd  # pylint: disable=g-import-not-at-top
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  if read_only:
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
  return mlmd.MetadataStore(config)
