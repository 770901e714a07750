"""Batch inference module: keyed input rows -> the examples a model's serving signature parses.

`build_examples` checks every input row against what the model's serving signature parses (read from the
SavedModel: the keys, dtypes and defaults of its `ParseExampleV2` op), converts values to those dtypes (CSV and
BigQuery give strings), and sets aside, with their reason, rows that cannot be scored: a missing key, a missing
or unparsable value (NaN, infinity and numbers beyond float32 included), a duplicate key (when keys must be
unique); lines the reader could not read never reach it (the ExamplesBuilder sets them aside). The key column is
carried untouched. The one split it writes, `score`, is what BulkInferrer scores.
"""
import dataclasses
from typing import Any, Dict, Iterable, Optional, Tuple

import apache_beam as beam
import tensorflow as tf

from pipelines.components.examples_builder import BuiltExamples
from pipelines.parsing import parse_finite_float

SCORE_SPLIT = 'score'
# The reason the JSONL reader (pipelines/batch_inference/pipeline.py) gives a line that is no flat JSON object;
# the ExamplesBuilder sets such lines aside (with the CSV reader's bad_encoding and wrong_field_count) before
# build_examples.
MALFORMED_JSON = 'malformed_line'
REASONS = ('missing_key', 'missing_value', 'unparsable_value', 'duplicate_key')
INT64_LIMIT = 2.0 ** 63  # an int64 feature holds less
_KINDS = {tf.float32: 'float', tf.float64: 'float', tf.int64: 'int', tf.int32: 'int', tf.string: 'bytes'}


@dataclasses.dataclass(frozen=True)
class FeatureInput:
  """One feature the serving signature parses: its value kind ('int', 'float', 'bytes') and whether the
  parser has no default for it (a row without it cannot be scored)."""
  kind: str
  required: bool


def _const_value(node_def) -> Any:
  return tf.make_ndarray(node_def.attr['value'].tensor)


def _parse_specs(graph_def: tf.compat.v1.GraphDef) -> Dict[str, FeatureInput]:
  """Features of every ParseExampleV2 op in a GraphDef and its function library."""
  bodies = [(graph_def.node, None)] + [(f.node_def, f) for f in graph_def.library.function]
  features: Dict[str, FeatureInput] = {}
  for nodes, _ in bodies:
    by_name = {node.name: node for node in nodes}
    for node in nodes:
      if node.op != 'ParseExampleV2':
        continue
      inputs = [by_name.get(name.lstrip('^').split(':')[0]) for name in node.input]
      # inputs: serialized, names, sparse_keys, dense_keys, ragged_keys, dense_defaults...
      sparse_keys = _const_value(inputs[2]).reshape(-1) if inputs[2] is not None else []
      dense_keys = _const_value(inputs[3]).reshape(-1) if inputs[3] is not None else []
      ragged_keys = _const_value(inputs[4]).reshape(-1) if inputs[4] is not None else []
      dense_types = node.attr['Tdense'].list.type
      for index, key in enumerate(dense_keys):
        default = inputs[5 + index]
        # an empty Const default means none (required); a default is otherwise a (reshaped) value
        required = default is None or (default.op == 'Const' and _const_value(default).size == 0)
        features[key.decode()] = FeatureInput(_KINDS[tf.dtypes.as_dtype(dense_types[index])], required)
      for keys, types in ((sparse_keys, node.attr['sparse_types'].list.type),
                          (ragged_keys, node.attr['ragged_value_types'].list.type)):
        for key, dtype in zip(keys, types):
          features[key.decode()] = FeatureInput(_KINDS[tf.dtypes.as_dtype(dtype)], False)
  return features


def model_input_spec(model_dir: str, signature: str = 'serving_default') -> Dict[str, FeatureInput]:
  """Feature name -> FeatureInput for what `signature` of the SavedModel in `model_dir` parses from its
  serialized tf.Examples; ValueError when the signature parses nothing we can read (no ParseExampleV2)."""
  model = tf.saved_model.load(model_dir)
  if signature not in model.signatures:
    raise ValueError(f'{model_dir} has no signature {signature!r}; it has {sorted(model.signatures)}')
  features = _parse_specs(model.signatures[signature].graph.as_graph_def())
  if not features:
    raise ValueError(f'signature {signature!r} of {model_dir} parses no tf.Example features '
                     '(no ParseExampleV2 op found)')
  return features


def convert(value: Any, kind: str) -> Any:
  """`value` (a string from CSV or BigQuery, a JSON number, or a list) as the parser's kind: int, float or
  str; ValueError when it is not one (e.g. 'abc' or 2.5 for an int; NaN, infinity or beyond float32 for a
  float; beyond int64 for an int)."""
  if isinstance(value, list):
    return [convert(v, kind) for v in value]
  if kind == 'bytes':
    return value if isinstance(value, (str, bytes)) else str(value)
  if isinstance(value, bool):
    raise ValueError(f'{value!r} is a boolean')
  number = parse_finite_float(value)
  if kind == 'float':
    return number
  if not number.is_integer() or abs(number) >= INT64_LIMIT:
    raise ValueError(f'{value!r} is not an int64')
  return int(number)


def _is_missing(value: Any) -> bool:
  return value is None or (isinstance(value, str) and value.strip() == '') or value == []


def check_row(row: Dict[str, Any], key_column: str, spec: Dict[str, FeatureInput]
              ) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
  """(the example row: key untouched + the parsed features converted, None) or (None, reason)."""
  if _is_missing(row.get(key_column)):
    return None, 'missing_key'
  example = {key_column: row[key_column]}  # untouched, unless the model parses it too (then converted below)
  for name, feature in spec.items():
    value = row.get(name)
    if _is_missing(value):
      if feature.required:
        return None, 'missing_value'
      continue
    try:
      example[name] = convert(value, feature.kind)
    except (TypeError, ValueError):
      return None, 'unparsable_value'
  return example, None


def _key_text(value: Any) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def _one_per_key(element: Tuple[str, Iterable[Dict[str, Any]]]):
  _, rows = element
  rows = list(rows)
  if len(rows) == 1:
    yield rows[0]
    return
  for row in rows:  # every row of a duplicated key: none of them may be picked over the others
    yield beam.pvalue.TaggedOutput('rejected', {'reason': 'duplicate_key', 'record': row})


class _CheckRows(beam.DoFn):
  """Loads the model's input spec once per worker, then checks and converts each row."""

  def __init__(self, key_column: str, model_dir: str, signature: str):
    self._key_column = key_column
    self._model_dir = model_dir
    self._signature = signature
    self._spec: Optional[Dict[str, FeatureInput]] = None

  def setup(self):
    self._spec = model_input_spec(self._model_dir, self._signature)

  def process(self, row: Dict[str, Any]):
    example, reason = check_row(row, self._key_column, self._spec)
    if reason:
      yield beam.pvalue.TaggedOutput('rejected', {'reason': reason, 'record': row})
    else:
      yield example


def build_examples(rows: beam.PCollection, params: Dict[str, Any]) -> BuiltExamples:
  """Keyed rows -> `score` examples for the model, and rejected rows with their reason (REASONS).

  params: key_column, model_dir (a SavedModel folder), signature (its serving signature), unique_keys (reject
  every row of a key that occurs more than once).
  """
  checked = rows | 'CheckRows' >> beam.ParDo(
      _CheckRows(params['key_column'], params['model_dir'], params['signature'])).with_outputs(
          'rejected', main='valid')
  if not params['unique_keys']:
    return BuiltExamples(splits={SCORE_SPLIT: checked.valid}, rejected=checked.rejected)
  unique = (checked.valid
            | 'ByKey' >> beam.Map(lambda row, key: (_key_text(row[key]), row), params['key_column'])
            | 'GroupByKey' >> beam.GroupByKey()
            | 'OnePerKey' >> beam.FlatMap(_one_per_key).with_outputs('rejected', main='valid'))
  rejected = (checked.rejected, unique.rejected) | 'FlattenRejected' >> beam.Flatten()
  return BuiltExamples(splits={SCORE_SPLIT: unique.valid}, rejected=rejected)
