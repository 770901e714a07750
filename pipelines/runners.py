"""Runners: where a pipeline object runs. Local = LocalDagRunner + sqlite ML Metadata + Beam DirectRunner."""
import hashlib
import importlib
import inspect
import os
from typing import List

from tfx import v1 as tfx

BEAM_MODES = ('in_memory', 'multi_processing')


def direct_runner_args(mode: str, num_workers: int) -> List[str]:
  """beam_pipeline_args for the DirectRunner; num_workers 0 means one per CPU core (multi_processing only)."""
  if mode not in BEAM_MODES:
    raise ValueError(f'beam_mode must be one of {BEAM_MODES}, got {mode!r}')
  return [f'--direct_running_mode={mode}', f'--direct_num_workers={num_workers if mode != "in_memory" else 1}']


def sqlite_metadata(path: str):
  """ML Metadata connection config for a sqlite file (created on first use)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  return tfx.orchestration.metadata.sqlite_metadata_connection_config(path)


def code_version(*module_names: str) -> str:
  """A short hash of the source of the given modules.

  Components that load code by dotted path (module_path, run_fn) do not put that code in their cache
  key; passing this hash as an exec property or custom_config makes a code change a cache miss.
  """
  digest = hashlib.sha256()
  for name in module_names:
    digest.update(inspect.getsource(importlib.import_module(name)).encode('utf-8'))
  return digest.hexdigest()[:16]


def run_local(pipeline: tfx.dsl.Pipeline) -> None:
  """Runs the pipeline with LocalDagRunner (components in this process, Beam on the DirectRunner)."""
  tfx.orchestration.LocalDagRunner().run(pipeline)
