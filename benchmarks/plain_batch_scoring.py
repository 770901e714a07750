"""The plain script batch_inference is measured against: pandas reads the keyed CSV, tfx_bsl encodes the
tf.Examples the model parses, the SavedModel scores batches of 1,000, pandas writes key and predictions. No
row checks, no rejected rows, no counts: the least a person would write by hand.

    python benchmarks/plain_batch_scoring.py --model MODEL_DIR/Format-Serving --data customers.csv \
        --output /tmp/plain.csv [--key customer_id] [--batch-size 1000]
"""
import argparse
import os
import time
from typing import Dict

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import pandas as pd  # pylint: disable=g-import-not-at-top,wrong-import-position
import pyarrow as pa  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfx_bsl.coders import example_coder  # pylint: disable=g-import-not-at-top,wrong-import-position

from modules import batch_inference as bi  # pylint: disable=g-import-not-at-top,wrong-import-position


def _one_value_lists(values: pa.Array) -> pa.Array:
  return pa.LargeListArray.from_arrays(pa.array(np.arange(len(values) + 1), type=pa.int64()), values)


def score(model_dir: str, data: str, output: str, key: str, batch_size: int = 1000) -> Dict[str, float]:
  """Scores `data` with the SavedModel's serving_default into `output` (CSV: key + each output); returns the
  seconds of each step and the rows scored."""
  timings = {}
  spec = bi.model_input_spec(model_dir)  # the column types, which a person writing the script would know
  started = time.time()
  frame = pd.read_csv(data, dtype={key: str, **{n: str for n, f in spec.items() if f.kind == 'bytes'}})
  timings['read'] = time.time() - started

  started = time.time()
  dtypes = {'float': np.float32, 'int': np.int64}
  arrays = [_one_value_lists(pa.array(frame[name].to_numpy().astype(dtypes[f.kind])) if f.kind in dtypes
                             else pa.array(frame[name].astype(str).to_numpy(), type=pa.large_binary()))
            for name, f in spec.items() if name in frame]
  names = [name for name in spec if name in frame]
  serialized = example_coder.RecordBatchToExamplesEncoder().encode(pa.RecordBatch.from_arrays(arrays, names))
  timings['encode'] = time.time() - started

  started = time.time()
  signature = tf.saved_model.load(model_dir).signatures['serving_default']
  input_name = list(signature.structured_input_signature[1])[0]
  outputs: Dict[str, list] = {}
  for start in range(0, len(serialized), batch_size):
    result = signature(**{input_name: tf.constant(serialized[start:start + batch_size])})
    for name, tensor in result.items():
      outputs.setdefault(name, []).append(tensor.numpy().reshape(len(tensor), -1)[:, 0])
  timings['score'] = time.time() - started

  started = time.time()
  pd.DataFrame({key: frame[key], **{name: np.concatenate(parts) for name, parts in sorted(outputs.items())}}
               ).to_csv(output, index=False)
  timings['write'] = time.time() - started
  timings['total'] = sum(timings.values())
  timings['rows'] = len(frame)
  return timings


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--model', required=True, help='a SavedModel folder (a Trainer model\'s Format-Serving)')
  parser.add_argument('--data', required=True)
  parser.add_argument('--output', required=True)
  parser.add_argument('--key', default='customer_id')
  parser.add_argument('--batch-size', type=int, default=1000)
  args = parser.parse_args()
  print(score(args.model, args.data, args.output, args.key, args.batch_size))


if __name__ == '__main__':
  main()
