"""Numbers and records as every use case parses them: finite, float32-sized numbers only, and rejected records
written as valid JSON (no NaN or infinity, which json.dumps writes as bare NaN/Infinity tokens)."""
import json
import math
from typing import Any

# The largest float32: a larger value becomes infinity in a tf.Example's float_list.
FLOAT32_MAX = 3.4028234663852886e38


def parse_finite_float(value: Any) -> float:
  """`value` (a number, or a string or bytes holding one) as a float; ValueError for anything else, for NaN or
  infinity ('nan', 'inf', '1e999') and for a magnitude a float32 cannot hold ('1e308'), so no NaN or infinity
  reaches a model input. Booleans are refused (True is not an amount)."""
  if isinstance(value, bool) or value is None:
    raise ValueError(f'not a number: {value!r}')
  if isinstance(value, bytes):
    value = value.decode('utf-8', errors='replace')
  number = float(value.strip() if isinstance(value, str) else value)
  if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
    raise ValueError(f'not a finite float32 number: {value!r}')
  return number


def json_safe(value: Any) -> Any:
  """`value` with every NaN or infinite float replaced by its text ('nan', 'inf', '-inf') and bytes decoded, in
  nested dicts, lists and tuples; other values as they are (json.dumps(default=str) handles the rest)."""
  if isinstance(value, float) and not math.isfinite(value):
    return repr(value)
  if isinstance(value, bytes):
    return value.decode('utf-8', errors='replace')
  if isinstance(value, dict):
    return {str(k): json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_safe(v) for v in value]
  if hasattr(value, 'item') and hasattr(value, 'dtype'):  # a NumPy scalar
    return json_safe(value.item())
  return value


def record_json(record: Any) -> str:
  """A rejected record as strict JSON (json_safe first; keys sorted so the same record gives the same text)."""
  return json.dumps(json_safe(record), sort_keys=True, default=str, allow_nan=False)
