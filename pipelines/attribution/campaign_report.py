"""CampaignReport: per-journey attention (BulkInferrer, `attention` signature) -> per-campaign attribution,
next to the classic baselines on the same journeys and, where given, the ground truth.

Reads the converting journeys' PredictionLogs (each carries its input tf.Example: campaigns, mask, hours before
the end) and every journey of the ExamplesBuilder's train/eval/test splits (the Markov chain needs the journeys
that did not convert too). Writes into its `report` artifact:
- campaign_report.csv: campaign,total_attention,average_attention,attributed_conversions, one row per campaign
  seen in the journeys (total_attention: sum of the campaign's attention weights over the converting journeys;
  average_attention: per touch; attributed_conversions: its attention-weighted share of the incremental part of
  each conversion, see below);
- attribution.json: {'methods': {method: {'attributed_conversions': {campaign: n}, 'spearman', 'abs_error'}},
  'journeys', 'converting_journeys', 'incremental_conversions', 'model_blessed'}; `spearman` and `abs_error` only
  with a ground-truth file, the attention methods only when the model was blessed (BulkInferrer writes nothing
  otherwise);
- attention_by_position.csv: mean attention by touches before the conversion (0 = last touch) and length;
- campaign_report.png (attributed conversions per campaign by method, with the truth) and
  attention_by_position.png.
Memory holds one small tuple per journey (fine to a few million journeys).

Attention splits a conversion between its touches, but part of every conversion would have happened without any
campaign (the base rate). Giving campaigns the whole conversion credits reach, not effect: on the bundled data
that ranks campaigns no better than chance against the ground truth. So `attention` (and the CSV's
attributed_conversions) splits only the conversion's incremental part by attention: each converting journey
counts max(0, 1 - p0 / p), p its conversion probability and p0 the model's probability for the same journey with
every touch removed (`base_probability` of the attention signature). `attention_full_credit` is the plain split
of whole conversions, kept for comparison.
"""
import csv
import collections
import hashlib
import json
import os
import time
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
from tfx import types
from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.utils import path_utils

from modules import attribution as module
from pipelines.attribution import baselines
from pipelines.attribution import counterfactual
from pipelines.attribution import triggering
from pipelines import artifacts, beam_io

REPORT_CSV = 'campaign_report.csv'
ATTRIBUTION_JSON = 'attribution.json'
POSITION_CSV = 'attention_by_position.csv'
REPORT_PLOT = 'campaign_report.png'
POSITION_PLOT = 'attention_by_position.png'
JOURNEY_SPLITS = ('train', 'eval', 'test')
COUNTERFACTUAL_SUMS = 'counterfactual_sums.json'
SHARE_USERS = 2000  # users over whom summary.json's triggered share per campaign is counted: a summary
MODEL_HEADLINE = 'total_effect'  # the counterfactual method that did best across the simulators (docs/attribution.md)
BASELINE_HEADLINE = 'markov'


class AttributionReport(types.Artifact):
  """Campaign attribution by attention and by the baselines (files listed in the module docstring)."""
  TYPE_NAME = 'marketing_ml.AttributionReport'  # namespace.Name: KFP v2 requires it


def _as_list(value: Any) -> List[Any]:
  return list(value) if isinstance(value, list) else [value]


def journey_of(row: Dict[str, Any]) -> baselines.Journey:
  """The real (unpadded) touches of a journey example row."""
  mask = _as_list(row[module.MASK])
  real = [i for i, m in enumerate(mask) if m]
  campaigns, hours = _as_list(row[module.CAMPAIGNS]), _as_list(row[module.HOURS])
  return baselines.Journey(campaigns=[campaigns[i] for i in real], hours_before_end=[hours[i] for i in real],
                           converted=bool(row[module.LABEL]))


UserJourney = Tuple[float, List[str], List[float]]  # (hour of the last touch, every campaign, hours before the last)


def user_journey(row: Dict[str, Any]) -> UserJourney:
  """A journey example row's place in its user's stream, every touch included (triggering.user_stream)."""
  return (float(row['end_timestamp']) / 3600.0, [str(c) for c in _as_list(row[module.ALL_CAMPAIGNS])],
          [float(h) for h in _as_list(row[module.ALL_HOURS])])


def read_journeys(examples: types.Artifact) -> Tuple[List[baselines.Journey], Dict[str, List[UserJourney]]]:
  """Every journey of the train, eval and test splits (each journey is in exactly one), and each user's journeys
  with every touch (user_journey), in one read."""
  found, users = [], collections.defaultdict(list)
  for split in JOURNEY_SPLITS:
    pattern = os.path.join(artifact_utils.get_split_uri([examples], split), '*.gz')
    for record in artifacts.read_records(pattern):
      row = beam_io.serialized_example_to_row(record)
      found.append(journey_of(row))
      users[str(row['uid'])].append(user_journey(row))
  return found, dict(users)


class Attended(NamedTuple):
  """One converting journey scored with the attention signature."""
  journey_id: str
  journey: baselines.Journey
  weights: List[float]       # attention over its real touches
  incremental_share: float   # max(0, 1 - base_probability / conversion_probability)


def incremental_share(probability: float, base_probability: float) -> float:
  """The part of a conversion the journey's touches account for: max(0, 1 - p0 / p)."""
  return max(0.0, 1.0 - base_probability / probability) if probability > 0 else 0.0


def read_attention(inference_uri: str) -> Iterator[Attended]:
  """One Attended per PredictionLog of the attention signature."""
  for record in artifacts.read_records(os.path.join(inference_uri, '*.gz')):
    log = prediction_log_pb2.PredictionLog.FromString(record).predict_log
    row = beam_io.serialized_example_to_row(next(iter(log.request.inputs.values())).string_val[0])
    outputs = {name: tf.make_ndarray(log.response.outputs[name]).reshape(-1)
               for name in (module.ATTENTION, module.PREDICTION, module.BASE_PREDICTION)}
    mask = _as_list(row[module.MASK])
    yield Attended(row[module.KEY], journey_of(row),
                   [float(outputs[module.ATTENTION][i]) for i, m in enumerate(mask) if m],
                   incremental_share(float(outputs[module.PREDICTION][0]), float(outputs[module.BASE_PREDICTION][0])))


def attention_tables(attended: List[Attended]) -> Tuple[Dict[str, Dict[str, float]], List[Dict[str, Any]]]:
  """Per campaign {total_attention, touches, attributed_conversions (attention share of each conversion's
  incremental part), full_credit_conversions (attention share of whole conversions)} and rows of mean attention
  by touches before the conversion (0 = last) for each journey length."""
  per_campaign: Dict[str, Dict[str, float]] = collections.defaultdict(
      lambda: {'total_attention': 0.0, 'touches': 0, 'attributed_conversions': 0.0, 'full_credit_conversions': 0.0})
  by_position: Dict[Tuple[int, int], List[float]] = collections.defaultdict(list)
  for _, journey, weights, incremental in attended:
    share = np.asarray(weights) / max(float(np.sum(weights)), 1e-12)
    for i, (campaign, weight) in enumerate(zip(journey.campaigns, weights)):
      entry = per_campaign[campaign]
      entry['total_attention'] += weight
      entry['touches'] += 1
      entry['attributed_conversions'] += float(share[i]) * incremental
      entry['full_credit_conversions'] += float(share[i])
      by_position[(len(weights), len(weights) - 1 - i)].append(weight)
  rows = [{'journey_length': length, 'touches_before_conversion': back, 'journeys': len(values),
           'mean_attention': float(np.mean(values))} for (length, back), values in sorted(by_position.items())]
  return dict(per_campaign), rows


def read_truth(path: str) -> Dict[str, float]:
  """campaign -> true incremental conversions from a CSV with columns campaign,true_incremental_conversions."""
  with tf.io.gfile.GFile(path) as f:
    return {row['campaign']: float(row['true_incremental_conversions']) for row in csv.DictReader(f)}


def _plots(directory: str, methods: Dict[str, Dict[str, Any]], campaigns: List[str],
           truth: Optional[Dict[str, float]], position_rows: List[Dict[str, Any]]) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  series = {name: [m['attributed_conversions'].get(c, 0.0) for c in campaigns] for name, m in methods.items()}
  if truth is not None:
    series = {'ground truth': [truth.get(c, 0.0) for c in campaigns], **series}
  figure, axis = plt.subplots(figsize=(max(8, len(campaigns) * 0.8), 4.5))
  width = 0.8 / max(len(series), 1)
  for i, (name, values) in enumerate(series.items()):
    axis.bar(np.arange(len(campaigns)) + i * width, values, width, label=name)
  axis.set_xticks(np.arange(len(campaigns)) + 0.4 - width / 2)
  axis.set_xticklabels(campaigns, rotation=45, ha='right')
  axis.set_ylabel('attributed conversions')
  axis.set_title('Conversions per campaign by attribution method')
  axis.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(os.path.join(directory, REPORT_PLOT), dpi=100)
  plt.close(figure)
  figure, axis = plt.subplots(figsize=(7, 4))
  for length in sorted({r['journey_length'] for r in position_rows}):
    rows = sorted((r for r in position_rows if r['journey_length'] == length),
                  key=lambda r: r['touches_before_conversion'])
    axis.plot([r['touches_before_conversion'] for r in rows], [r['mean_attention'] for r in rows], marker='o',
              label=f'{length} touches')
  axis.set_xlabel('touches before the conversion (0 = last touch)')
  axis.set_ylabel('mean attention weight')
  axis.set_title('Attention by position, converting journeys')
  if position_rows:
    axis.legend(fontsize=7, ncol=2)
  figure.tight_layout()
  figure.savefig(os.path.join(directory, POSITION_PLOT), dpi=100)
  plt.close(figure)


def headline_method(model_blessed: bool) -> str:
  """The method behind campaign_report.csv's attributed_conversions: the model's counterfactual credit when the
  model is the champion, else the Markov removal effect (the baseline a practitioner would use)."""
  return MODEL_HEADLINE if model_blessed else BASELINE_HEADLINE


def write_report(directory: str, journeys: List[baselines.Journey], attended: Optional[List[Attended]],
                 truth: Optional[Dict[str, float]], half_life_hours: float,
                 credit: Optional[Dict[str, Dict[str, float]]] = None, model_totals: Optional[Dict[str, float]] = None,
                 model_blessed: Optional[bool] = None) -> Dict[str, Any]:
  """Writes the report files (module docstring) into `directory` and returns attribution.json's content.
  attended: None when the model was not blessed (no attention); truth: None without ground truth; credit:
  the model's counterfactual credit {'removal': {...}, 'shapley': {...}} (counterfactual.scaled) or None;
  model_blessed (default: attention present) picks the headline method (headline_method)."""
  model_blessed = attended is not None if model_blessed is None else model_blessed
  methods: Dict[str, Dict[str, Any]] = {}
  campaigns = sorted({c for j in journeys for c in j.campaigns})
  per_campaign, position_rows = attention_tables(attended or [])
  for method, attributed in (credit or {}).items():
    methods[method] = {'attributed_conversions': attributed}
  if attended is not None:
    for method, key in (('attention', 'attributed_conversions'), ('attention_full_credit', 'full_credit_conversions')):
      methods[method] = {'attributed_conversions': {c: per_campaign[c][key] for c in campaigns if c in per_campaign}}
  for name, attributed in baselines.all_baselines(journeys, half_life_hours).items():
    methods[name] = {'attributed_conversions': attributed}
  if truth is not None:
    for method in methods.values():
      method.update(baselines.compare(method['attributed_conversions'], truth))
  headline = headline_method(model_blessed)
  if headline not in methods:
    headline = BASELINE_HEADLINE
  with tf.io.gfile.GFile(os.path.join(directory, REPORT_CSV), 'w') as f:
    writer = csv.writer(f, lineterminator='\n')
    writer.writerow(['campaign', 'attributed_conversions', 'attributed_by', 'total_attention', 'average_attention']
                    + list(methods))
    for c in campaigns:
      entry = per_campaign.get(c, {'total_attention': 0.0, 'touches': 0})
      average = entry['total_attention'] / entry['touches'] if entry['touches'] else 0.0
      writer.writerow([c, f'{methods[headline]["attributed_conversions"].get(c, 0.0):.6f}', headline,
                       f'{entry["total_attention"]:.6f}', f'{average:.6f}']
                      + [f'{m["attributed_conversions"].get(c, 0.0):.6f}' for m in methods.values()])
  with tf.io.gfile.GFile(os.path.join(directory, POSITION_CSV), 'w') as f:
    writer = csv.DictWriter(f, ['journey_length', 'touches_before_conversion', 'journeys', 'mean_attention'],
                            lineterminator='\n')
    writer.writeheader()
    writer.writerows(position_rows)
  _plots(directory, methods, campaigns, truth, position_rows)
  content = {'methods': methods, 'journeys': len(journeys), 'attributed_by': headline,
             'converting_journeys': sum(1 for j in journeys if j.converted), 'model_blessed': model_blessed}
  if attended is not None:
    content['incremental_conversions'] = float(sum(a.incremental_share for a in attended))
  content.update(model_totals or {})
  with tf.io.gfile.GFile(os.path.join(directory, ATTRIBUTION_JSON), 'w') as f:
    json.dump(content, f, indent=2, sort_keys=True)
  return content


def fit_triggering(users: Dict[str, List[UserJourney]], max_users: int
                   ) -> Tuple[triggering.Triggering, Dict[str, float]]:
  """The touch process (triggering.fit) of at most `max_users` of the users (the smallest md5 of the uid: the same
  users each run), and each campaign's share of touches it says earlier touches triggered (over the first
  SHARE_USERS of those users)."""
  chosen = sorted(users, key=lambda uid: hashlib.md5(uid.encode('utf-8')).hexdigest())[:max_users]
  streams = [triggering.user_stream(users[uid]) for uid in chosen]
  process = triggering.fit(streams)
  return process, triggering.triggered_shares(process, streams[:SHARE_USERS])


def _keyed_by_user(serialized: bytes) -> Tuple[str, Tuple[str, baselines.Journey, bytes, UserJourney]]:
  row = beam_io.serialized_example_to_row(serialized)
  return str(row['uid']), (row[module.KEY], journey_of(row), serialized, user_journey(row))


def _with_triggered(element, process: triggering.Triggering):
  """(uid, journeys) -> (key, journey, payload, triggering.Triggered) for each of the user's journeys."""
  _, journeys = element
  journeys = list(journeys)
  for (key, journey, payload, _), triggered in zip(
      journeys, triggering.triggered_journeys(process, [j[3] for j in journeys])):
    yield key, journey, payload, triggered


def counterfactual_sums(pipeline: beam.Pipeline, examples: types.Artifact, model_dir: str, length: int,
                        max_exact: int, permutations: int, output_dir: str, process: triggering.Triggering
                        ) -> Dict[str, np.ndarray]:
  """Runs the counterfactual pass (counterfactual.CounterfactualCredit) over every journey of the train, eval
  and test splits with the model's `counterfactual` signature, each user's journeys with which touches the
  `process` says earlier ones triggered; returns its unscaled sums."""
  path = os.path.join(output_dir, COUNTERFACTUAL_SUMS)
  with pipeline as p:
    reads = [p | f'Read{split}' >> beam.io.ReadFromTFRecord(
                 os.path.join(artifact_utils.get_split_uri([examples], split), '*.gz'))
             for split in JOURNEY_SPLITS]
    _ = (reads
         | 'Flatten' >> beam.Flatten()
         | 'KeyByUser' >> beam.Map(_keyed_by_user)
         | 'GroupByUser' >> beam.GroupByKey()
         | 'Triggered' >> beam.FlatMap(_with_triggered, process)
         | 'Counterfactual' >> counterfactual.CounterfactualCredit(
             counterfactual.SavedModelPredict(model_dir), length, max_exact=max_exact, permutations=permutations)
         | 'AsJson' >> beam.Map(lambda sums: json.dumps({k: list(map(float, v)) for k, v in sums.items()}))
         | 'Write' >> beam.io.WriteToText(path, shard_name_template=''))
  with tf.io.gfile.GFile(path) as f:
    text = f.read().strip()
  return {k: np.array(v) for k, v in json.loads(text).items()} if text else {}


@tfx.dsl.components.component(use_beam=True)
def CampaignReport(  # pylint: disable=invalid-name
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
    inference_result: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.InferenceResult],
    report: tfx.dsl.components.OutputArtifact[AttributionReport],
    ground_truth: tfx.dsl.components.Parameter[str] = '',
    time_decay_half_life_hours: tfx.dsl.components.Parameter[float] = 168.0,
    journey_max_length: tfx.dsl.components.Parameter[int] = 10,
    shapley_max_exact: tfx.dsl.components.Parameter[int] = 6,
    shapley_permutations: tfx.dsl.components.Parameter[int] = 16,
    triggering_max_users: tfx.dsl.components.Parameter[int] = 50000,
    code_version: tfx.dsl.components.Parameter[str] = '',
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None) -> None:
  """Counterfactual, attention and baseline attribution per campaign (see the module docstring); ground_truth:
  path of a CSV campaign,true_incremental_conversions, or '' for none (then no spearman / abs_error);
  code_version: a hash of this code and the baselines', so a change in them invalidates the cache."""
  del code_version
  journeys, users = read_journeys(examples)
  blessed = bool(tf.io.gfile.glob(os.path.join(inference_result.uri, '*.gz')))
  attended = list(read_attention(inference_result.uri)) if blessed else None
  truth = read_truth(ground_truth) if ground_truth else None
  started = time.monotonic()
  process, shares = fit_triggering(users, triggering_max_users)
  totals_triggering = {'triggering_seconds': round(time.monotonic() - started, 2), 'triggered_share': shares}
  started = time.monotonic()
  sums = counterfactual_sums(beam_pipeline, examples, path_utils.serving_model_path(model.uri), journey_max_length,
                             shapley_max_exact, shapley_permutations, report.uri, process)
  credit, totals = counterfactual.scaled(sums)
  totals['counterfactual_seconds'] = round(time.monotonic() - started, 2)
  totals.update(totals_triggering)
  content = write_report(report.uri, journeys, attended, truth, time_decay_half_life_hours, credit, totals, blessed)
  report.set_int_custom_property('journeys', content['journeys'])
  report.set_int_custom_property('converting_journeys', content['converting_journeys'])
  report.set_int_custom_property('model_blessed', int(blessed))
  report.set_string_custom_property('attributed_by', content['attributed_by'])
