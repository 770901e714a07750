"""Counterfactual credit from a conversion model: what the model predicts for each journey without a campaign.

For a journey with distinct campaigns D, v(S) is the model's conversion probability for the journey with only the
touches of the campaigns in S kept (same positions in time, `hours_before_end` unchanged: the moment of decision
does not move when a touch is withheld). Over every journey, converting or not:
- removal effect of campaign c: v(D) - v(D without c), summed over journeys;
- Shapley value of c: the average over orders of D of c's marginal contribution v(S + c) - v(S); exact (every
  subset) when |D| <= max_exact, else over `permutations` orders drawn with a seed per journey; the values of a
  journey sum to v(D) - v(empty) either way (efficiency);
- total effect of c: each campaign's removal effect spread equally over its touches in the journey, then passed
  back from touches that earlier touches triggered to those (pipelines/attribution/triggering.py), summed;
- the model's incremental conversions: sum of v(D) - v(empty) (expected conversions minus those of the same
  journeys with no touches); every credit is scaled so that its total equals it.
`credit_batch` is the pure computation over one batch of journeys and a `predict` function; `CounterfactualCredit`
runs it as a Beam job with one batched model call per batch of journeys.
"""
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np

from pipelines.attribution import triggering
from pipelines.attribution.baselines import Journey
from pipelines.attribution.shapley import coalitions, exact_matrix, shapley

# predict(payloads [J] (object: one per journey), rows [N] int64 (the journey of each row), keep [N, L] float32
# (1 = the touch at that position stays)) -> probabilities [N]
Predict = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
TOTAL = ''  # key of the journey totals beside the campaigns' sums (a campaign name is never empty)
FIELDS = ('removal', 'shapley', 'total_effect', 'expected', 'base')
METHODS = FIELDS[:3]


def distinct_campaigns(journey: Journey) -> List[str]:
  """The journey's campaigns in order of first touch."""
  return list(dict.fromkeys(journey.campaigns))


def keep_matrix(journey: Journey, campaigns: Sequence[str], masks: Sequence[int], length: int) -> np.ndarray:
  """[len(masks), length] float32: 1.0 at the real positions whose campaign is in the mask (bit i: campaigns[i])."""
  player = {c: i for i, c in enumerate(campaigns)}
  position_player = np.full(length, -1, np.int64)
  for p, c in enumerate(journey.campaigns[:length]):
    position_player[p] = player[c]
  bits = np.asarray(masks, np.int64)[:, None] >> np.maximum(position_player, 0)[None, :]
  return ((bits & 1) * (position_player >= 0)[None, :]).astype(np.float32)


def _touch_removal(journey: Journey, campaigns: Sequence[str], removal: Sequence[float]) -> np.ndarray:
  """Each touch's part of its campaign's removal effect in the journey (an equal share per touch)."""
  per_touch = {c: r / journey.campaigns.count(c) for c, r in zip(campaigns, removal)}
  return np.array([per_touch[c] for c in journey.campaigns], float)


def _total_effect(journey: Journey, triggered: Optional[triggering.Triggered], campaigns: Sequence[str],
                  removal: Sequence[float]) -> Dict[str, float]:
  """The journey's removal effects, spread over its touches and passed back along `triggered`."""
  if triggered is None or not campaigns:
    return dict(zip(campaigns, removal))
  credit = np.zeros(len(triggered.campaigns))
  credit[len(triggered.campaigns) - len(journey.campaigns):] = _touch_removal(journey, campaigns, removal)
  total: Dict[str, float] = {}
  kept = triggering.propagate(credit, triggered.child, triggered.parent, triggered.share)
  for campaign, part in zip(triggered.campaigns, kept):
    total[campaign] = total.get(campaign, 0.0) + float(part)
  return total


def credit_batch(journeys: Sequence[Tuple[str, Journey, Any, Optional[triggering.Triggered]]], predict: Predict,
                 length: int, max_exact: int, permutations: int) -> Dict[str, np.ndarray]:
  """{campaign: [removal, shapley, total_effect, 0, 0], TOTAL: [0, 0, 0, expected, base]} summed over the batch
  (unscaled), with one `predict` call over every coalition of every journey. Items are (key, journey, payload,
  triggered): the payload is what `predict` reads the journey from (a serialized example); keys seed each
  journey's sampled orders; triggered (triggering.triggered_journeys) has all the journey's touches, of which
  `journey` is the last ones, and which touches earlier ones triggered. total_effect: the removal effects spread
  over the touches and passed back to the touches that triggered them (triggering.propagate), which can reach a
  touch the model did not see; with triggered None, the removal effect."""
  plans, rows, keeps = [], [], []
  payloads = np.empty(len(journeys), dtype=object)  # np.array would split tuple payloads into columns
  for j, (key, journey, payload, triggered) in enumerate(journeys):
    campaigns = distinct_campaigns(journey)
    masks, orders = coalitions(campaigns, max_exact, permutations, key)
    plans.append((journey, triggered, campaigns, masks, orders, len(rows)))
    payloads[j] = payload
    rows += [j] * len(masks)
    keeps.append(keep_matrix(journey, campaigns, masks, length))
  sums: Dict[str, np.ndarray] = {TOTAL: np.zeros(len(FIELDS))}
  if not keeps:
    return sums
  probabilities = np.asarray(predict(payloads, np.array(rows, np.int64), np.concatenate(keeps)), float).reshape(-1)
  for journey, triggered, campaigns, masks, orders, start in plans:
    values = probabilities[start:start + len(masks)]
    value = dict(zip(masks, values))
    n = len(campaigns)
    full = (1 << n) - 1
    phi = exact_matrix(n) @ values if not orders else shapley(n, value, orders)  # exact: masks are 0..full
    removal = [value[full] - value[full & ~(1 << i)] for i in range(n)]
    for i, campaign in enumerate(campaigns):
      sums.setdefault(campaign, np.zeros(len(FIELDS)))[:2] += [removal[i], phi[i]]
    for campaign, part in _total_effect(journey, triggered, campaigns, removal).items():
      sums.setdefault(campaign, np.zeros(len(FIELDS)))[2] += part
    sums[TOTAL] += [0.0, 0.0, 0.0, value[full], value[0]]
  return sums


def scaled(sums: Dict[str, np.ndarray]) -> Tuple[Dict[str, Dict[str, float]], Dict[str, float]]:
  """({method: {campaign: n}} for each of METHODS, totals) with each method scaled to the model's incremental
  conversions (expected minus base); a method whose raw total is not positive is left unscaled."""
  total = sums.get(TOTAL, np.zeros(len(FIELDS)))
  incremental = float(total[3] - total[4])
  credits = {}
  for column, method in enumerate(METHODS):
    raw = {c: float(v[column]) for c, v in sums.items() if c != TOTAL}
    raw_total = sum(raw.values())
    factor = incremental / raw_total if raw_total > 0 else 1.0
    credits[method] = {c: v * factor for c, v in sorted(raw.items())}
  return credits, {'expected_conversions': float(total[3]), 'base_conversions': float(total[4]),
                   'model_incremental_conversions': incremental}


class _CreditDoFn(beam.DoFn):
  """Batches of (key, Journey) -> (campaign, sums); the model is loaded once per worker."""

  def __init__(self, load_predict: Callable[[], Predict], length: int, max_exact: int, permutations: int):
    self._load_predict = load_predict
    self._length, self._max_exact, self._permutations = length, max_exact, permutations
    self._predict = None

  def setup(self):
    self._predict = self._load_predict()

  def process(self, batch):
    for campaign, sums in credit_batch(batch, self._predict, self._length, self._max_exact,
                                       self._permutations).items():
      yield str(campaign), sums  # a plain str key: Beam's deterministic coder refuses numpy strings


@beam.ptransform_fn
def CounterfactualCredit(journeys: beam.PCollection, load_predict: Callable[[], Predict], length: int,  # pylint: disable=invalid-name
                         max_exact: int = 6, permutations: int = 32, batch_size: int = 512) -> beam.PCollection:
  """(key, Journey) -> one dict {campaign or TOTAL: np.array(FIELDS)} of the unscaled sums (see `scaled`)."""
  return (journeys
          | 'Batch' >> beam.BatchElements(min_batch_size=batch_size, max_batch_size=batch_size)
          | 'Credit' >> beam.ParDo(_CreditDoFn(load_predict, length, max_exact, permutations))
          | 'SumPerCampaign' >> beam.CombinePerKey(sum)
          | 'AsDict' >> beam.combiners.ToDict())


class SavedModelPredict:
  """Picklable loader of the trained model's `counterfactual` signature as a Predict over serialized journeys
  (one call per batch: each journey is parsed and transformed once, its coalitions are rows of it)."""

  def __init__(self, model_dir: str):
    self.model_dir = model_dir

  def __call__(self) -> Predict:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from modules import attribution as module  # pylint: disable=g-import-not-at-top
    signature = tf.saved_model.load(self.model_dir).signatures[module.COUNTERFACTUAL_SIGNATURE]

    def predict(payloads: np.ndarray, rows: np.ndarray, keep: np.ndarray) -> np.ndarray:
      return signature(examples=tf.constant(list(payloads)), rows=tf.constant(rows),
                       keep=tf.constant(keep))[module.PREDICTION].numpy()
    return predict
