"""Train/score skew of the CLV model's inputs: is the score split inside the range the model learned from?

For each numeric model input, the training split gives the range [min, max] and the mean and standard
deviation; the score split is compared with them: the share of scored customers outside the training range
and the shift of the score mean in training standard deviations. A feature is flagged when more than
MAX_OUTSIDE_SHARE of the scored customers lie outside the training range or its mean moved by more than
MAX_MEAN_SHIFT standard deviations: the model extrapolates there.
"""
from typing import Any, Dict, Sequence

import numpy as np
import pandas as pd

MAX_OUTSIDE_SHARE = 0.05
MAX_MEAN_SHIFT = 1.0


def score_skew(train: pd.DataFrame, score: pd.DataFrame, features: Sequence[str]) -> Dict[str, Any]:
  """{'features': {name: {train_min, train_max, train_mean, train_std, score_mean, outside_share, mean_shift,
  flagged}}, 'flagged': [names], 'thresholds': {...}} for the `features` both frames have."""
  report: Dict[str, Dict[str, Any]] = {}
  for name in features:
    if name not in train or name not in score or train.empty or score.empty:
      continue
    reference, scored = train[name].to_numpy(float), score[name].to_numpy(float)
    low, high = float(reference.min()), float(reference.max())
    mean, std = float(reference.mean()), float(reference.std())
    outside = float(np.mean((scored < low) | (scored > high)))
    shift = float((scored.mean() - mean) / (std if std > 0 else 1.0))  # a constant feature: in its own units
    report[name] = {'train_min': low, 'train_max': high, 'train_mean': mean, 'train_std': std,
                    'score_mean': float(scored.mean()), 'outside_share': outside, 'mean_shift': shift,
                    'flagged': outside > MAX_OUTSIDE_SHARE or abs(shift) > MAX_MEAN_SHIFT}
  return {'features': report, 'flagged': sorted(n for n, r in report.items() if r['flagged']),
          'thresholds': {'outside_share': MAX_OUTSIDE_SHARE, 'mean_shift': MAX_MEAN_SHIFT}}


def markdown(skew: Dict[str, Any]) -> str:
  """One line naming the flagged features (or saying none is), then a table of the flagged ones."""
  if not skew['flagged']:
    return 'Score split inside the training range: no model input is flagged.\n'
  lines = [f"**The score split is outside the training range** in {len(skew['flagged'])} model input(s): "
           'the model extrapolates there.', '',
           '| feature | training range | training mean | score mean | outside range | mean shift (sd) |',
           '|---|---|---|---|---|---|']
  for name in skew['flagged']:
    r = skew['features'][name]
    lines.append(f"| {name} | {r['train_min']:.4g}..{r['train_max']:.4g} | {r['train_mean']:.4g} | "
                 f"{r['score_mean']:.4g} | {r['outside_share']:.1%} | {r['mean_shift']:+.2f} |")
  return '\n'.join(lines) + '\n'
