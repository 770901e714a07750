"""Statistical forecasts of next month's total from an item's monthly history, and the forecaster's metrics.

Every forecast function takes the item's monthly totals from its first month to the forecast origin
(inclusive, oldest first, months without sales as 0) and returns the forecast of the month after.
"""
from typing import Dict, Sequence

import numpy as np

SEASON = 12


def simple_exponential_smoothing(history: Sequence[float], alpha: float) -> float:
  """Level after smoothing the history with `alpha`, starting from the first value."""
  level = float(history[0])
  for value in history[1:]:
    level += alpha * (float(value) - level)
  return level


def fitted_exponential_smoothing(history: Sequence[float], alphas: Sequence[float]) -> float:
  """Exponential smoothing with the alpha (of `alphas`) whose one-step-ahead in-sample forecasts have the
  smallest mean absolute error on this history; the first alpha while there is nothing to fit (< 3 months)."""
  values = [float(value) for value in history]  # Python floats: the same doubles, without NumPy's per-item cost
  if len(values) < 3:
    return simple_exponential_smoothing(values, alphas[0])
  best_alpha, best_error = alphas[0], np.inf
  for alpha in alphas:
    level, error = values[0], 0.0
    for value in values[1:]:
      error += abs(value - level)
      level += alpha * (value - level)
    if error < best_error - 1e-12:  # ties keep the smaller alpha
      best_alpha, best_error = alpha, error
  return simple_exponential_smoothing(values, best_alpha)


def croston(history: Sequence[float], alpha: float) -> float:
  """Croston's method: smoothed non-zero demand size over smoothed interval between demands (in months).
  Initialised with the first non-zero demand and its interval from the start; 0 without any demand."""
  size, interval, since = None, 1.0, 0
  for value in history:
    since += 1
    if value > 0:
      if size is None:
        size, interval = float(value), float(since)
      else:
        size += alpha * (float(value) - size)
        interval += alpha * (since - interval)
      since = 0
  return 0.0 if size is None else size / interval


def tsb(history: Sequence[float], alpha: float, beta: float) -> float:
  """Teunter-Syntetos-Babai: smoothed demand probability (updated every month, so it decays towards 0 while an
  item does not sell) times smoothed non-zero demand size (updated when it sells)."""
  size, probability = None, 1.0
  for value in history:
    if size is None:
      if value > 0:
        size = float(value)
      continue
    probability += beta * (float(value > 0) - probability)
    if value > 0:
      size += alpha * (float(value) - size)
  return 0.0 if size is None else probability * size


def mase_scale(history: Sequence[float]) -> float:
  """Mean absolute error of the in-sample seasonal-naive forecast (lag 12) on the history, or of the naive one
  (lag 1) while the history is shorter than 13 months; 0 when there is nothing to measure it on."""
  values = np.asarray(history, dtype=float)
  lag = SEASON if len(values) > SEASON else 1
  if len(values) <= lag:
    return 0.0
  return float(np.mean(np.abs(values[lag:] - values[:-lag])))


def metrics(labels: np.ndarray, forecasts: np.ndarray, scales: np.ndarray) -> Dict[str, float]:
  """mae, rmse, wape (sum |error| / sum actual) and mase (mean of |error| / scale over the examples with a
  positive scale: an item without two months of history has no in-sample error to scale by)."""
  labels, forecasts, scales = (np.asarray(a, dtype=float) for a in (labels, forecasts, scales))
  errors = forecasts - labels
  scaled = scales > 0
  return {'mae': float(np.mean(np.abs(errors))), 'rmse': float(np.sqrt(np.mean(errors ** 2))),
          'wape': float(np.sum(np.abs(errors)) / np.sum(labels)) if np.sum(labels) > 0 else float('nan'),
          'mase': float(np.mean(np.abs(errors[scaled]) / scales[scaled])) if scaled.any() else float('nan')}
