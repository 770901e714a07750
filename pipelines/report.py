"""Writes runs/<use case>/summary.json, report.md and plots from ML Metadata after a run.

Everything here is read back from ML Metadata and the artifacts of the latest pipeline run (cached
executions included), so the report states what the pipeline really produced.
"""
import dataclasses
import json
import os
import shutil
from typing import Any, Dict, List, Optional, Tuple

import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2

from pipelines import beam_io, tuning
from pipelines.artifacts import metadata_store
from pipelines import champion as champion_rule
from pipelines.components.examples_builder import REJECTED_PREFIX
from pipelines.components.predictions_export import PREDICTIONS_PREFIX

_STATES = {metadata_store_pb2.Execution.COMPLETE: 'complete', metadata_store_pb2.Execution.CACHED: 'cached',
           metadata_store_pb2.Execution.FAILED: 'failed', metadata_store_pb2.Execution.RUNNING: 'running',
           metadata_store_pb2.Execution.NEW: 'new', metadata_store_pb2.Execution.CANCELED: 'canceled'}
DECILE_PLOT = 'decile_plot.png'
PREDICTION_NODES = ('PredictionsExport', 'BatchScorer')  # the nodes whose predictions the report publishes


@dataclasses.dataclass
class ReportExtras:
  """What a use case's `report_extras` adds to the summary: output files by name (PNG plots are shown in
  report.md), metrics per model merged into `metrics` (e.g. ranking metrics computed outside TFMA) and
  counts merged into `data`."""
  outputs: Dict[str, str] = dataclasses.field(default_factory=dict)
  metrics: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=dict)
  data: Dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class NodeRun:
  """One component's execution in the latest run: state, seconds and output artifacts by key."""
  state: str
  seconds: float
  outputs: Dict[str, List[metadata_store_pb2.Artifact]]


def _custom(artifact: metadata_store_pb2.Artifact, name: str) -> Any:
  if name not in artifact.custom_properties:
    return None
  value = artifact.custom_properties[name]
  kind = value.WhichOneof('value')
  return getattr(value, kind) if kind not in ('struct_value', 'proto_value') else None


def latest_run(metadata_path: str, pipeline_name: str) -> Dict[str, NodeRun]:
  """Node id -> NodeRun for the most recent run of `pipeline_name` recorded in the sqlite store."""
  store = metadata_store(metadata_path)
  pipeline_context = store.get_context_by_type_and_name('pipeline', pipeline_name)
  if pipeline_context is None:
    return {}
  run_contexts = [c for c in store.get_contexts_by_type('pipeline_run')
                  if any(p.id == pipeline_context.id for p in store.get_parent_contexts_by_context(c.id))]
  if not run_contexts:
    return {}
  run_context = max(run_contexts, key=lambda c: (c.create_time_since_epoch, c.id))
  nodes: Dict[str, NodeRun] = {}
  executions = sorted(store.get_executions_by_context(run_context.id), key=lambda e: (e.create_time_since_epoch, e.id))
  for execution in executions:
    node_contexts = [c for c in store.get_contexts_by_execution(execution.id)
                     if c.name.startswith(pipeline_name + '.')]
    node_id = node_contexts[0].name[len(pipeline_name) + 1:] if node_contexts else str(execution.id)
    outputs: Dict[str, List[metadata_store_pb2.Artifact]] = {}
    events = [e for e in store.get_events_by_execution_ids([execution.id])
              if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    for event in events:
      key = event.path.steps[0].key if event.path.steps else 'output'
      outputs.setdefault(key, []).append(artifacts[event.artifact_id])
    nodes[node_id] = NodeRun(
        state=_STATES.get(execution.last_known_state, str(execution.last_known_state)),
        seconds=round((execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000, 2),
        outputs=outputs)
  return nodes


def _output(nodes: Dict[str, NodeRun], node_id: str, key: str) -> Optional[metadata_store_pb2.Artifact]:
  node = nodes.get(node_id)
  artifacts = node.outputs.get(key) if node else None
  return artifacts[-1] if artifacts else None


def evaluation_metrics(evaluation_uri: str, reported_models: Dict[str, Tuple[str, str, str]]
                       ) -> Tuple[Dict[str, Dict[str, float]], Dict[str, Dict[str, float]]]:
  """Overall-slice TFMA metrics per reported model, e.g. {'dnn': {'mean_absolute_error': ...}}, and the
  changes against the latest blessed model (TFMA's `*_diff` metrics) where a baseline model was evaluated.

  reported_models: name -> (TFMA model name, output name, metric-key prefix); a model with a prefix owns the
  keys `<prefix>_*` of that output (a metric computed from a prediction column), the unprefixed one the rest.
  """
  import tensorflow_model_analysis as tfma  # pylint: disable=g-import-not-at-top
  prefixes = tuple(f'{prefix}_' for _, _, prefix in reported_models.values() if prefix)
  metrics: Dict[str, Dict[str, float]] = {}
  changes: Dict[str, Dict[str, float]] = {}
  for label, (model_name, output_name, prefix) in reported_models.items():
    result = tfma.load_eval_result(evaluation_uri, model_name=model_name)
    if not result.slicing_metrics:  # without a baseline model, TFMA stores the candidate unnamed
      result = tfma.load_eval_result(evaluation_uri)
    values = dict(result.slicing_metrics).get((), {}).get(output_name, {}).get('', {})
    doubles = {name: value['doubleValue'] for name, value in sorted(values.items()) if 'doubleValue' in value}
    if prefix:
      doubles = {name[len(prefix) + 1:]: v for name, v in doubles.items() if name.startswith(prefix + '_')}
    else:
      doubles = {name: v for name, v in doubles.items() if not name.startswith(prefixes)}
    metrics[label] = {name: v for name, v in doubles.items() if not name.endswith('_diff')}
    diffs = {name[:-len('_diff')]: v for name, v in doubles.items() if name.endswith('_diff')}
    if diffs:
      changes[label] = diffs
  return metrics, changes


def validation_failures(evaluation_uri: str) -> List[str]:
  """Why TFMA did not bless the candidate: one line per failed threshold, empty if it passed."""
  import tensorflow_model_analysis as tfma  # pylint: disable=g-import-not-at-top
  result = tfma.load_validation_result(evaluation_uri)
  return [f'{failure.metric_key.name} ({failure.metric_key.output_name or "output"}): {failure.message}'
          for per_slice in result.metric_validations_per_slice for failure in per_slice.failures]


def _decile_plot(metrics: Dict[str, Dict[str, float]], path: str) -> bool:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  deciles = list(range(1, 11))
  figure, axis = plt.subplots(figsize=(7, 4))
  plotted = False
  for label, values in metrics.items():
    predicted = [values.get(f'decile_{d:02d}_mean_prediction') for d in deciles]
    actual = [values.get(f'decile_{d:02d}_mean_label') for d in deciles]
    if None in predicted or None in actual:
      continue
    if not plotted:
      axis.bar(deciles, actual, color='lightgray', label=f'actual mean label per {label} decile')
    axis.plot(deciles, predicted, marker='o', label=f'{label}: mean prediction')
    plotted = True
  if plotted:
    axis.set_xlabel('decile of prediction (1 = highest)')
    axis.set_ylabel('mean per example')
    axis.set_xticks(deciles)
    axis.legend()
    axis.set_title('Predicted vs actual per predicted decile (eval split)')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
  plt.close(figure)
  return plotted


def _concat_shards(pattern: str, destination: str) -> Optional[int]:
  """Concatenates CSV shards (each starting with the same header) into one file with that header once;
  returns the data rows written, or None (and writes nothing) when no shard matches."""
  shards = sorted(tf.io.gfile.glob(pattern))
  if not shards:
    return None
  rows = 0
  with open(destination, 'w') as out:
    for index, shard in enumerate(shards):
      with tf.io.gfile.GFile(shard) as f:
        lines = f.read().splitlines()
      for line in lines if index == 0 else lines[1:]:
        out.write(line + '\n')
      rows += len(lines) - 1
  return rows


def build_summary(use_case, nodes: Dict[str, NodeRun], output_dir: str, runner: str, data_path: str,
                  settings: Dict[str, Any], wall_seconds: float, error: Optional[str]) -> Dict[str, Any]:
  """summary.json content; also publishes predictions.csv, rejected_rows.csv and the decile plot."""
  outputs: Dict[str, str] = {}
  data: Dict[str, Any] = {'path': data_path}
  build_report = _output(nodes, 'ExamplesBuilder', 'report')
  if build_report is not None:
    counts = beam_io.read_counts(build_report.uri)
    data['rows_read'] = counts.get('rows_in', 0)
    data['examples'] = beam_io.counts_under(counts, 'examples')
    data['skipped'] = beam_io.counts_under(counts, 'skipped')
    rejected_path = os.path.join(output_dir, 'rejected_rows.csv')
    if data['skipped']:
      _concat_shards(os.path.join(build_report.uri, REJECTED_PREFIX + '*.csv'), rejected_path)
      outputs['rejected_rows'] = rejected_path
    elif os.path.exists(rejected_path):
      os.remove(rejected_path)

  metrics: Dict[str, Dict[str, float]] = {}
  changes: Dict[str, Dict[str, float]] = {}
  evaluation = _output(nodes, 'Evaluator', 'evaluation')
  if evaluation is not None:
    metrics, changes = evaluation_metrics(evaluation.uri, use_case.reported_models)
    outputs['evaluation'] = evaluation.uri
    plot_path = os.path.join(output_dir, DECILE_PLOT)
    if _decile_plot(metrics, plot_path):
      outputs['decile_plot'] = plot_path

  gate_blessing = _output(nodes, 'ChampionGate', 'blessing')
  blessing = gate_blessing if gate_blessing is not None else _output(nodes, 'Evaluator', 'blessing')
  chosen = champion_rule.read(gate_blessing.uri) if gate_blessing is not None else None
  tuner_results = _output(nodes, 'Tuner', 'tuner_results')
  best_hyperparameters = _output(nodes, 'Tuner', 'best_hyperparameters')
  pushed = _output(nodes, 'Pusher', 'pushed_model')
  predictions = next((p for p in (_output(nodes, node_id, 'predictions') for node_id in PREDICTION_NODES)
                      if p is not None), None)
  predictions_path = os.path.join(output_dir, 'predictions.csv')
  rows_scored = (_concat_shards(os.path.join(predictions.uri, PREDICTIONS_PREFIX + '*.csv'), predictions_path)
                 if predictions is not None else None)
  if rows_scored is not None:
    data['rows_scored'] = rows_scored
    outputs['predictions'] = predictions_path
  if predictions is not None:  # extras also for predictions not written as CSV (JSONL files, a BigQuery table)
    if use_case.report_extras:
      extras = use_case.report_extras(settings, lambda node_id, key: _output(nodes, node_id, key),
                                      predictions_path, output_dir)
      outputs.update(extras.outputs)
      data.update(extras.data)
      for model, values in extras.metrics.items():
        metrics.setdefault(model, {}).update(values)

  return {
      'pipeline': use_case.name,
      'runner': runner,
      'status': 'failed' if error else 'succeeded',
      'error': error,
      'wall_seconds': round(wall_seconds, 1),
      'components': {node_id: {'seconds': node.seconds, 'cached': node.state == 'cached', 'state': node.state}
                     for node_id, node in nodes.items()},
      'data': data,
      'metrics': metrics,
      'metrics_change_vs_blessed': changes,
      'champion': chosen.to_dict() if chosen is not None else None,
      'tuning': (tuning.read_results(tuner_results.uri, best_hyperparameters.uri if best_hyperparameters else None)
                 if tuner_results is not None else None),
      'blessed': bool(_custom(blessing, 'blessed')) if blessing is not None else None,
      'blessing_failures': validation_failures(evaluation.uri) if evaluation is not None else [],
      'pushed_model': (_custom(pushed, 'pushed_destination') if pushed is not None and _custom(pushed, 'pushed')
                       else None),
      'settings': settings,
      'outputs': outputs,
  }


def _champion_line(chosen: Dict[str, Any]) -> str:
  """report.md's first fact: which model's predictions are the output, and why."""
  values = ', '.join(f'{name} {"n/a" if v is None else f"{v:.4g}"}' for name, v in chosen['values'].items())
  if chosen['model_won']:
    verdict = f'**Champion: the model `{chosen["model"]}`**: it beats every baseline'
  else:
    verdict = (f'**Champion: the baseline `{chosen["winner"]}`**: the model `{chosen["model"]}` does not beat it, '
               'so it is not pushed and the outputs hold the baseline\'s predictions')
  direction = 'higher is better' if chosen['higher_is_better'] else 'lower is better'
  return f'{verdict} on {chosen["metric"]} ({direction}; {values}).'


def _tuning_lines(tuned: Dict[str, Any]) -> List[str]:
  """report.md's tuning section: the chosen values and every trial's objective."""
  lines = ['## Tuning', '', f'- chosen: {", ".join(f"{k}={v}" for k, v in tuned["best"].items()) or "n/a"}', '',
           '| trial | objective | values |', '|---|---|---|']
  for trial in tuned['trials']:
    values = ', '.join(f'{k}={v}' for k, v in trial.items() if k not in ('trial_id', 'score'))
    lines.append(f'| {trial.get("trial_id")} | {trial.get("score", float("nan")):.4g} | {values} |')
  return lines + ['']


def _markdown(summary: Dict[str, Any], reported_metrics: List[Tuple[str, str]]) -> str:
  lines = [f'# {summary["pipeline"]}: {summary["status"]}', '',
           f'Runner: {summary["runner"]}; wall time {summary["wall_seconds"]:.0f} s.', '']
  if summary.get('champion'):
    lines += [_champion_line(summary['champion']), '']
  flagged = (summary['data'].get('score_skew') or {}).get('flagged')
  if flagged:
    lines += [f'**The scored rows lie outside the training range** in {", ".join(flagged)}: predictions that '
              'depend on these inputs extrapolate (see the score skew section).', '']
  if summary['error']:
    lines += ['## Error', '', '```', summary['error'], '```', '']
  data = summary['data']
  lines += ['## Data', '', f'- input: `{data.get("path")}`', f'- rows read: {data.get("rows_read", "n/a")}']
  for split, count in sorted(data.get('examples', {}).items()):
    lines.append(f'- examples in `{split}`: {count}')
  for reason, count in sorted(data.get('skipped', {}).items()):
    lines.append(f'- skipped, {reason}: {count} (see rejected_rows.csv)')
  if 'rows_scored' in data:
    lines.append(f'- rows scored: {data["rows_scored"]}')
  lines.append('')
  # Models with plain-number metrics form the table; nested entries (e.g. per-campaign attribution) are
  # written by the use case's own report extras.
  models = [m for m, values in summary['metrics'].items()
            if all(isinstance(v, (int, float)) for v in values.values())]
  if models:
    lines += ['## Holdout metrics', '', '| metric | ' + ' | '.join(models) + ' |',
              '|---|' + '---|' * len(models)]
    for key, title in reported_metrics:
      cells = [summary['metrics'][m].get(key) for m in models]
      lines.append(f'| {title} | ' + ' | '.join('n/a' if c is None else f'{c:.4g}' for c in cells) + ' |')
    lines.append('')
    if 'decile_plot' in summary['outputs']:
      lines += [f'![deciles]({DECILE_PLOT})', '']
  plots = [path for name, path in summary['outputs'].items() if path.endswith('.png') and name != 'decile_plot']
  if plots:
    lines += ['## Plots', ''] + [f'![{os.path.basename(p)}]({os.path.basename(p)})' for p in plots] + ['']
  if summary.get('tuning'):
    lines += _tuning_lines(summary['tuning'])
  lines += ['## Model', '', f'- blessed: {summary["blessed"]}']
  lines += [f'  - not blessed: {failure}' for failure in summary['blessing_failures']]
  lines += [f'- pushed to: {summary["pushed_model"]}', '',
            '## Components', '', '| component | state | seconds |', '|---|---|---|']
  for node_id, node in summary['components'].items():
    lines.append(f'| {node_id} | {node["state"]} | {node["seconds"]} |')
  lines += ['', '## Outputs', '']
  lines += [f'- {name}: `{path}`' for name, path in summary['outputs'].items()]
  return '\n'.join(lines) + '\n'


def write(use_case, output_dir: str, metadata_path: str, runner: str, data_path: str, settings: Dict[str, Any],
          wall_seconds: float, error: Optional[str] = None) -> Dict[str, Any]:
  """Writes summary.json and report.md under output_dir and returns the summary."""
  os.makedirs(output_dir, exist_ok=True)
  nodes = latest_run(metadata_path, use_case.name) if os.path.exists(metadata_path) else {}
  summary = build_summary(use_case, nodes, output_dir, runner, data_path, settings, wall_seconds, error)
  summary['outputs']['summary'] = os.path.join(output_dir, 'summary.json')
  summary['outputs']['report'] = os.path.join(output_dir, 'report.md')
  with open(summary['outputs']['summary'], 'w') as f:
    json.dump(summary, f, indent=2, sort_keys=False, default=str)
  with open(summary['outputs']['report'], 'w') as f:
    f.write(_markdown(summary, list(use_case.reported_metrics)))
  return summary


def write_submitted(use_case, output_dir: str, data_path: str, settings: Dict[str, Any], spec_file: str,
                    job_name: str) -> Dict[str, Any]:
  """summary.json and report.md for a pipeline handed to Vertex AI Pipelines: its results live in Vertex's
  ML Metadata and the pipeline root, so the summary says where the job and its spec are."""
  os.makedirs(output_dir, exist_ok=True)
  summary = {'pipeline': use_case.name, 'runner': 'vertex', 'status': 'submitted', 'error': None,
             'vertex_job': job_name, 'data': {'path': data_path}, 'settings': settings,
             'outputs': {'pipeline_spec': spec_file, 'summary': os.path.join(output_dir, 'summary.json'),
                         'report': os.path.join(output_dir, 'report.md')}}
  with open(summary['outputs']['summary'], 'w') as f:
    json.dump(summary, f, indent=2, default=str)
  with open(summary['outputs']['report'], 'w') as f:
    f.write(f'# {use_case.name}: submitted to Vertex AI Pipelines\n\n- job: `{job_name}`\n'
            f'- pipeline spec: `{spec_file}`\n- input: `{data_path}`\n')
  return summary
