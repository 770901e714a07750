"""Which touches other touches brought about: a multivariate Hawkes process over each user's impressions.

Retargeting follows a visit, brand search and coupons follow intent that an earlier campaign created: a touch can be
caused by earlier touches, and then it is a step on the path of the campaign that started it, not a cause of its
own. A conversion model credits such a touch with the conversion it precedes (it is the best sign that the user is
about to buy) while the campaign that created the intent gets little. Following Xu, Duan and Whinston (2014, "Path
to purchase: a mutually exciting point process model for online advertising and conversion"), each user's
impressions (a stream, over every journey, observed over the same window) are modelled as a Hawkes process:
campaign m's impressions arrive at the rate

    activity_u * background[m, day of t] + sum over the user's earlier touches i: sum over kernels s of
                                           excitation[s, c_i, m] * decay_s * exp(-decay_s * (t - t_i))

with kernels of a day, ten days and a month. `activity_u` is the user's own level of exposure (users differ in
how much they browse): without it a busy user's touches would look as if they triggered each other. A campaign's
background is off on the days it was not running (a week or more without its impressions), or a campaign launched
after another would look triggered by it; it does not follow volume on the days it ran, because a campaign whose
volume grows as earlier campaigns bring users to it is what the process is to find. Fitted by
expectation-maximisation (Lewis and Mohler 2011). Each touch then has a probability of being background and, for
each earlier touch, of having been triggered by it; `propagate` passes a touch's credit to the touches that
triggered it in those shares, latest touches first, so credit flows back to where a chain began. Campaigns that
reach users at random get background probability ~1 and `propagate` leaves their credit as it is.
"""
import collections
import dataclasses
from typing import Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

KERNEL_HOURS = (24.0, 240.0, 720.0)  # a touch's pull on later touches within a day, ten days, a month
BIN_HOURS = 24.0              # the background is on the days a campaign ran (flights, launches), off the others
MIN_GAP_DAYS = 7              # days without a campaign's impressions that mean it was not running (flights: weeks)
MAX_PARENTS = 100             # earlier touches a touch can have been triggered by: bounds the pairs of a heavy user
ITERATIONS = 50               # EM steps of the fit (how far the shares still move: benchmarks/RESULTS.md)
LOCAL_ITERATIONS = 10         # steps fitting one user's activity with the rest of the process fixed


@dataclasses.dataclass(frozen=True)
class Triggering:
  """A fitted process: campaigns (index order), background [V, D] per hour at activity 1 in each of D days from
  `start_hours` (the window every stream is observed over; a campaign's rate on the days it ran, 0 on the others:
  _running), excitation [S, V, V] (expected touches of the column campaign one touch of the row campaign brings,
  per kernel), decays [S] per hour."""
  campaigns: Tuple[str, ...]
  background: np.ndarray
  excitation: np.ndarray
  decays: np.ndarray
  start_hours: float

  def day(self, hours: np.ndarray) -> np.ndarray:
    """The background's day of each time (times outside the window: its first or last day)."""
    return np.clip(((hours - self.start_hours) // BIN_HOURS).astype(np.int64), 0, self.background.shape[1] - 1)


class Stream(NamedTuple):
  """One user's touches in time order: campaigns and hours (any origin shared by every stream)."""
  campaigns: Sequence[str]
  hours: Sequence[float]


@dataclasses.dataclass(frozen=True)
class _Events:
  campaign: np.ndarray   # [N] campaign index
  time: np.ndarray       # [N] hours
  stream: np.ndarray     # [N] stream index
  child: np.ndarray      # [P] pairs within a stream: the later touch
  parent: np.ndarray     # [P] and one of the MAX_PARENTS touches before it


def _events(streams: Sequence[Stream], index: Dict[str, int]) -> _Events:
  campaign, time, stream, child, parent = [], [], [], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
  offset = 0
  for u, item in enumerate(streams):
    n = len(item.campaigns)
    campaign += [index[c] for c in item.campaigns]
    time += [float(h) for h in item.hours]
    stream += [u] * n
    for lag in range(1, min(n, MAX_PARENTS + 1)):
      child.append(np.arange(lag, n) + offset)
      parent.append(np.arange(0, n - lag) + offset)
    offset += n
  return _Events(np.array(campaign, np.int64), np.array(time, float), np.array(stream, np.int64),
                 np.concatenate(child).astype(np.int64), np.concatenate(parent).astype(np.int64))


def _kernels(process_decays: np.ndarray, dt: np.ndarray) -> np.ndarray:
  """[S, P] kernel densities decay * exp(-decay * dt)."""
  return process_decays[:, None] * np.exp(-process_decays[:, None] * dt[None, :])


def _e_step(events: _Events, process: 'Triggering', activity: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """(p_background [N], p_pair [S, P]): each touch's probability of being background or triggered by each
  earlier touch of its stream through each kernel."""
  dt = events.time[events.child] - events.time[events.parent]
  triggered = (process.excitation[:, events.campaign[events.parent], events.campaign[events.child]]
               * _kernels(process.decays, dt))
  # Floored: a touch on a day its campaign did not run in the fitted users is background unless a parent explains it.
  base = np.maximum(process.background[events.campaign, process.day(events.time)] * activity[events.stream], 1e-12)
  total = np.maximum(base + np.bincount(events.child, triggered.sum(axis=0), minlength=len(base)), 1e-300)
  return base / total, triggered / total[events.child][None, :]


def _activity(events: _Events, p_background: np.ndarray, process: 'Triggering', streams: int) -> np.ndarray:
  """Each stream's exposure level: its background touches over what activity 1 would bring in the window."""
  expected = max(float(process.background.sum()) * BIN_HOURS, 1e-300)
  return np.maximum(np.bincount(events.stream, p_background, minlength=streams) / expected, 1e-12)


def _running(volume: np.ndarray) -> np.ndarray:
  """[V, D] 1.0 on the days each campaign ran: every day but those in a run of at least MIN_GAP_DAYS days without
  its impressions (a shorter gap, or a slow start as users reach it, is the campaign running)."""
  running = np.ones_like(volume)
  for campaign, days in enumerate(volume > 0):
    start = None
    for day, active in enumerate(list(days) + [True]):
      if not active and start is None:
        start = day
      elif active and start is not None:
        if day - start >= MIN_GAP_DAYS:
          running[campaign, start:day] = 0.0
        start = None
  return running


def fit(streams: Sequence[Stream], iterations: int = ITERATIONS, kernel_hours: Sequence[float] = KERNEL_HOURS,
        flights: bool = True) -> Triggering:
  """Fits the process to the streams' touches by expectation-maximisation (deterministic: no random start); every
  stream is observed from the first touch of all to the last. flights=False: every campaign's background on every
  day (the alternative benchmarks/attribution_variants.py measures)."""
  campaigns = tuple(sorted({c for s in streams for c in s.campaigns}))
  index = {c: i for i, c in enumerate(campaigns)}
  events = _events(streams, index)
  v, k = len(campaigns), len(kernel_hours)
  start, end = (events.time.min(), events.time.max()) if len(events.time) else (0.0, 0.0)
  days = int((end - start) // BIN_HOURS) + 1
  decays = 1.0 / np.asarray(kernel_hours, float)
  volume = np.zeros((v, days))
  np.add.at(volume, (events.campaign, ((events.time - start) // BIN_HOURS).astype(np.int64)), 1.0)
  live = _running(volume) if flights else np.ones_like(volume)

  def background(p_background: np.ndarray, activity_total: float) -> np.ndarray:
    """The M-step's background: each campaign's background touches over the hours it ran, times all activity."""
    rate = np.bincount(events.campaign, p_background, minlength=v) / np.maximum(
        live.sum(axis=1) * BIN_HOURS * activity_total, 1e-300)
    return live * rate[:, None]

  activity = np.ones(len(streams))
  process = Triggering(campaigns, background(np.ones(len(events.campaign)), float(activity.sum())),
                       np.full((k, v, v), 0.01), decays, float(start))
  # The mass of each kernel the touches of each campaign could still fill before the end of observation.
  reach = 1.0 - np.exp(-decays[:, None] * (end - events.time)[None, :])
  exposure = np.stack([np.bincount(events.campaign, reach[s], minlength=v) for s in range(k)])
  for _ in range(iterations):
    p_background, p_pair = _e_step(events, process, activity)
    activity = _activity(events, p_background, process, len(streams))
    excitation = np.zeros((k, v, v))
    for s in range(k):
      np.add.at(excitation[s], (events.campaign[events.parent], events.campaign[events.child]), p_pair[s])
      excitation[s] /= np.maximum(exposure[s], 1e-12)[:, None]
    process = Triggering(campaigns, background(p_background, float(activity.sum())), excitation, decays,
                         float(start))
  return process


def parent_shares(process: Triggering, stream: Stream) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(p_background [n], child [P], parent [P], p_pair [P]) for one stream (touch indices in its order), its
  activity fitted to it with the process's other parameters fixed. A campaign the process has not seen is
  background and triggers nothing."""
  index = {c: i for i, c in enumerate(process.campaigns)}
  known = np.array([c in index for c in stream.campaigns], bool)
  events = _events([stream], {c: index.get(c, 0) for c in stream.campaigns})
  activity = np.ones(1)
  for _ in range(LOCAL_ITERATIONS):
    p_background, _ = _e_step(events, process, activity)
    activity = _activity(events, p_background, process, 1)
  p_background, p_pair = _e_step(events, process, activity)
  p_pair = p_pair.sum(axis=0)
  if not known.all():
    p_pair = np.where(known[events.child] & known[events.parent], p_pair, 0.0)
    p_background = 1.0 - np.bincount(events.child, p_pair, minlength=len(known))
  return p_background, events.child, events.parent, p_pair


def propagate(touch_credit: Sequence[float], child: np.ndarray, parent: np.ndarray, p_pair: np.ndarray
              ) -> np.ndarray:
  """Each touch's credit after passing, latest touch first, the triggered share of what it holds (its own credit
  and what later touches passed to it) to the earlier touches that triggered it (pairs: child, parent, share).
  Conserves the total."""
  total = np.asarray(touch_credit, float).copy()
  kept = total.copy()
  order = np.argsort(child, kind='stable')
  child, parent, p_pair = child[order], parent[order], p_pair[order]
  bounds = np.searchsorted(child, np.arange(len(total) + 1))
  for n in range(len(total) - 1, -1, -1):
    given = total[n] * p_pair[bounds[n]:bounds[n + 1]]
    total[parent[bounds[n]:bounds[n + 1]]] += given  # a touch's parents are distinct
    kept[n] = total[n] - given.sum()
  return kept


def triggered_shares(process: Triggering, streams: Sequence[Stream]) -> Dict[str, float]:
  """Each campaign's share of its touches in the streams that the process says earlier touches triggered."""
  triggered: Dict[str, float] = collections.defaultdict(float)
  touches: Dict[str, int] = collections.Counter()
  for stream in streams:
    p_background, _, _, _ = parent_shares(process, stream)
    for campaign, p in zip(stream.campaigns, p_background):
      triggered[campaign] += 1.0 - p
      touches[campaign] += 1
  return {c: triggered[c] / touches[c] for c in sorted(touches)}


class Triggered(NamedTuple):
  """A journey's touches, all of them (the model may see only the last ones), and which earlier touches of the
  journey triggered each (pairs child, parent with the share)."""
  campaigns: Sequence[str]
  child: np.ndarray
  parent: np.ndarray
  share: np.ndarray


def user_stream(journeys: Sequence[Tuple[float, Sequence[str], Sequence[float]]]) -> Stream:
  """A user's stream from its journeys as (hour of the journey's last touch, campaigns, hours before that)."""
  campaigns, hours = [], []
  for end, journey_campaigns, before_end in sorted(journeys, key=lambda j: j[0]):
    campaigns += list(journey_campaigns)
    hours += [end - h for h in before_end]
  return Stream(campaigns, hours)


def triggered_journeys(process: Triggering, journeys: Sequence[Tuple[float, Sequence[str], Sequence[float]]]
                       ) -> List[Triggered]:
  """For each of a user's journeys (as in user_stream, in any order), which of its touches earlier touches of the
  same journey triggered, from the user's whole stream (a share owed to a touch of an earlier journey stays with
  the touch: credit does not cross a conversion)."""
  order = sorted(range(len(journeys)), key=lambda j: journeys[j][0])
  _, child, parent, share = parent_shares(process, user_stream(journeys))
  found: List[Triggered] = [None] * len(journeys)  # type: ignore[list-item]
  start = 0
  for j in order:
    n = len(journeys[j][1])
    inside = (child >= start) & (child < start + n) & (parent >= start)
    found[j] = Triggered(list(journeys[j][1]), child[inside] - start, parent[inside] - start, share[inside])
    start += n
  return found
