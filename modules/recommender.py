"""Recommender module file: (user, track) pairs from listens, TFT vocabularies, the two-tower model, its evaluation.

Read top to bottom: build_examples (Beam, used by ExamplesBuilder) -> preprocessing_fn (Transform)
-> tuner_fn (Tuner) / run_fn (Trainer) -> eval_config (Evaluator); recall_at_k and catalog_metrics are the ranking
metrics the RecallEvaluator computes.

Input rows: user_name, track_id, track_name, artist_name, tags ('|'-separated, may be empty), listened_at (ISO-8601
or epoch seconds). One example per (user, track) pair: listen_count, label = listen_count > 2, weight (positive:
sqrt(count / the user's largest count), negative: 1 / count, as the reference), item features (artist, tags) and
user features (the user's share of training listens per top tag). TensorFlow Recommenders is not in the lock: both
towers, the sampled-softmax retrieval loss (objective `softmax`) or the reference's |cosine| log loss (`cosine`), and
the brute-force top-k are plain tf_keras / TensorFlow.
"""
import collections
import datetime
import hashlib
import math
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx_bsl.public import tfxio

from pipelines import metrics
from pipelines.components.examples_builder import BuiltExamples
from pipelines.parsing import parse_finite_float

USER, TRACK, ARTIST, TAGS = 'user_name', 'track_id', 'artist_name', 'tags'
COUNT, LABEL, WEIGHT = 'listen_count', 'label', 'weight'
USER_TAG_SHARES = 'user_tag_shares'
POSITIVE_MIN_COUNT = 3  # label = listen_count > 2
SPLITS = ('train', 'eval', 'test')
USERS_SPLIT = 'users'  # one example per user (user_name only), scored by the top-k signature
REASONS = ('missing_user', 'missing_track', 'unparsable_timestamp')
# Transform outputs (vocabulary files of the same names are assets of the transform graph)
USER_INDEX, TRACK_INDEX, ARTIST_INDEX, TAG_INDEX = 'user_index', 'track_index', 'artist_index', 'tag_index'
USER_VOCAB, TRACK_VOCAB, ARTIST_VOCAB, TAG_VOCAB = 'user', 'track', 'artist', 'tag'
# Model outputs and signatures
PREDICTION = 'probability'               # (1 + cosine) / 2 of the two towers (|cosine| for objective cosine)
POPULARITY = 'popularity_score'          # the track's training listens / the largest: the pair-level baseline
TOP_K_SIGNATURE = 'top_k'                # user names -> top-k tracks
TOP_K_EXAMPLES_SIGNATURE = 'top_k_examples'  # serialized tf.Examples with user_name -> the same (BulkInferrer)
EMBED_USERS, EMBED_TRACKS = 'embed_users', 'embed_tracks'  # names -> unit vectors (RecallEvaluator)
TOP_TRACKS, TOP_SCORES, IS_FALLBACK = 'track_ids', 'scores', 'is_fallback'
EXCLUDED_SCORE = -2.0  # below every cosine: a user's training tracks come last in top_k when excluded
OBJECTIVES = ('softmax', 'cosine')

Listen = Tuple[str, str, str, Tuple[str, ...]]  # (user, track, artist, tags)


# ---------------------------------------------------------------------------------------------------
# build_examples: listens -> (user, track) pairs (train / eval / test) + one example per user
# ---------------------------------------------------------------------------------------------------

def parse_timestamp(value: Any) -> datetime.datetime:
  """Epoch seconds (number or numeric string) or ISO-8601 (naive = UTC); ValueError otherwise."""
  text = str(value).strip()
  try:
    seconds = parse_finite_float(text)
  except ValueError:
    parsed = datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)
  if not math.isfinite(seconds):
    raise ValueError(f'not a time: {text}')
  return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def _text(value: Any) -> str:
  return '' if value is None else str(value).strip()


def parse_listen(row: Dict[str, Any]) -> Tuple[Optional[Listen], Optional[str]]:
  """((user, track, artist, tags), None) or (None, reason). Values may be strings or numbers (BigQuery gives
  strings, CsvExampleGen infers numbers); tags are '|'-separated, empty ones dropped."""
  user, track = _text(row.get(USER)), _text(row.get(TRACK))
  if not user:
    return None, 'missing_user'
  if not track:
    return None, 'missing_track'
  try:
    parse_timestamp(row.get('listened_at'))
  except (TypeError, ValueError, OverflowError, OSError):
    return None, 'unparsable_timestamp'
  tags = tuple(t for t in (part.strip() for part in _text(row.get(TAGS)).split('|')) if t)
  return (user, track, _text(row.get(ARTIST)), tags), None


def assign_split(user: str, track: str, eval_percent: int, test_percent: int) -> str:
  """'train', 'eval' or 'test' by a stable MD5 hash of the pair."""
  bucket = int(hashlib.md5(f'{user}\x1f{track}'.encode('utf-8')).hexdigest(), 16) % 100
  if bucket < 100 - eval_percent - test_percent:
    return 'train'
  return 'eval' if bucket < 100 - test_percent else 'test'


def aggregate_pair(user: str, track: str, listens: Iterable[Tuple[str, Tuple[str, ...]]], max_tags: int
                   ) -> Dict[str, Any]:
  """One pair from its listens [(artist, tags)]: listen_count, the most frequent artist (ties: smallest name) and
  the pair's tags by frequency (ties: name), at most max_tags, '|'-joined."""
  listens = list(listens)
  artists = collections.Counter(artist for artist, _ in listens)
  tags = collections.Counter(tag for _, pair_tags in listens for tag in set(pair_tags))
  return {USER: user, TRACK: track, COUNT: len(listens),
          ARTIST: min(artists, key=lambda a: (-artists[a], a)),
          TAGS: '|'.join(sorted(tags, key=lambda t: (-tags[t], t))[:max_tags])}


def pair_weight(count: int, user_max_count: int) -> float:
  """Positive (count > 2): sqrt(count / the user's largest count); negative: 1 / count (the reference's)."""
  return math.sqrt(count / user_max_count) if count >= POSITIVE_MIN_COUNT else 1.0 / count


def top_tags(train_pairs: Iterable[Dict[str, Any]], n: int) -> List[str]:
  """The n tags with the most training listens (ties: name)."""
  listens: Dict[str, int] = collections.Counter()
  for pair in train_pairs:
    for tag in filter(None, pair[TAGS].split('|')):
      listens[tag] += pair[COUNT]
  return sorted(listens, key=lambda t: (-listens[t], t))[:n]


def user_examples(user: str, pairs: List[Dict[str, Any]], tags: Sequence[str], n_tags: int
                  ) -> List[Tuple[str, Dict[str, Any]]]:
  """(split, example) for each pair of one user (with `split` set) and ('users', {user_name}).

  Every pair gets label, weight and the user's features: the share of the user's *training* listens per top tag
  (padded with zeros to n_tags), so no eval or test listen leaks into a feature."""
  max_count = max(p[COUNT] for p in pairs)
  train_listens = sum(p[COUNT] for p in pairs if p['split'] == 'train')
  shares = [0.0] * n_tags
  for p in pairs:
    if p['split'] == 'train':
      pair_tags = set(p[TAGS].split('|'))
      for i, tag in enumerate(tags):
        if tag in pair_tags:
          shares[i] += p[COUNT] / train_listens
  out = []
  for p in sorted(pairs, key=lambda p: p[TRACK]):
    example = {k: v for k, v in p.items() if k != 'split'}
    example.update({LABEL: int(p[COUNT] >= POSITIVE_MIN_COUNT), WEIGHT: pair_weight(p[COUNT], max_count),
                    USER_TAG_SHARES: list(shares)})
    out.append((p['split'], example))
  out.append((USERS_SPLIT, {USER: user}))
  return out


def _parse_or_reject(row: Dict[str, Any]):
  listen, reason = parse_listen(row)
  if reason:
    yield beam.pvalue.TaggedOutput('rejected', {'reason': reason, 'record': row})
  else:
    yield listen


def build_examples(rows: beam.PCollection, params: Dict[str, Any]) -> BuiltExamples:
  """Listens -> one example per (user, track) pair in train/eval/test (params eval_percent, test_percent, by
  pair hash), and split `users` (one example per user). params: max_tags (tags kept per pair), user_tag_features
  (top tags in the user features). Rejects missing_user, missing_track, unparsable_timestamp."""
  max_tags, n_tags = int(params['max_tags']), int(params['user_tag_features'])
  eval_percent, test_percent = int(params['eval_percent']), int(params['test_percent'])
  parsed = rows | 'Parse' >> beam.FlatMap(_parse_or_reject).with_outputs('rejected', main='valid')
  pairs = (parsed.valid
           | 'KeyByPair' >> beam.Map(lambda l: ((l[0], l[1]), (l[2], l[3])))
           | 'GroupByPair' >> beam.GroupByKey()
           | 'Aggregate' >> beam.MapTuple(lambda key, listens: aggregate_pair(key[0], key[1], listens, max_tags))
           | 'Split' >> beam.Map(lambda p: {**p, 'split': assign_split(p[USER], p[TRACK], eval_percent,
                                                                        test_percent)}))
  tags = (pairs
          | 'TrainPairs' >> beam.Filter(lambda p: p['split'] == 'train')
          | 'AllTrainPairs' >> beam.combiners.ToList()
          | 'TopTags' >> beam.Map(top_tags, n_tags))
  examples = (pairs
              | 'KeyByUser' >> beam.Map(lambda p: (p[USER], p))
              | 'GroupByUser' >> beam.GroupByKey()
              | 'UserExamples' >> beam.FlatMap(
                  lambda element, top: user_examples(element[0], list(element[1]), top, n_tags),
                  top=beam.pvalue.AsSingleton(tags)))
  splits = {name: examples | f'Select[{name}]' >> beam.Filter(lambda e, n=name: e[0] == n) | f'Drop[{name}]' >> (
      beam.Map(lambda e: e[1])) for name in SPLITS + (USERS_SPLIT,)}
  return BuiltExamples(splits=splits, rejected=parsed.rejected)


# ---------------------------------------------------------------------------------------------------
# preprocessing_fn (Transform): user, track, artist and tag vocabularies with frequency thresholds
# ---------------------------------------------------------------------------------------------------

def preprocessing_fn(inputs: Dict[str, tf.Tensor], custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
  """Vocabulary indices (one OOV bucket each: index == vocabulary size means out of vocabulary; tags 0 = padding,
  1..V, V + 1 unknown) from TFT vocabularies over the training pairs; a token is kept when it is in at least
  `min_<user|track|artist|tag>_pairs` training pairs (custom_config)."""
  def index(values, name):
    return tft.compute_and_apply_vocabulary(values, frequency_threshold=int(custom_config[f'min_{name}_pairs']),
                                            num_oov_buckets=1, vocab_filename=name)
  max_tags = int(custom_config['max_tags'])
  tags = tf.strings.split(tf.reshape(inputs[TAGS], [-1]), '|')
  tags = tf.ragged.boolean_mask(tags, tf.strings.length(tags) > 0).to_sparse()
  tag_index = index(tags, TAG_VOCAB)
  dense_tags = tf.sparse.to_dense(tf.SparseTensor(tag_index.indices, tag_index.values + 1, tag_index.dense_shape))
  dense_tags = tf.pad(dense_tags, [[0, 0], [0, max_tags]])[:, :max_tags]
  outputs = {
      USER_INDEX: index(tf.reshape(inputs[USER], [-1]), USER_VOCAB),
      TRACK_INDEX: index(tf.reshape(inputs[TRACK], [-1]), TRACK_VOCAB),
      ARTIST_INDEX: index(tf.reshape(inputs[ARTIST], [-1]), ARTIST_VOCAB),
      TAG_INDEX: tf.reshape(dense_tags, [-1, max_tags]),
      USER_TAG_SHARES: tf.cast(inputs[USER_TAG_SHARES], tf.float32),
      USER: tf.reshape(inputs[USER], [-1]),  # not model inputs: order the training data
      TRACK: tf.reshape(inputs[TRACK], [-1]),
  }
  if LABEL in inputs:
    outputs[LABEL] = tf.reshape(tf.cast(inputs[LABEL], tf.float32), [-1])
    outputs[WEIGHT] = tf.reshape(tf.cast(inputs[WEIGHT], tf.float32), [-1])
    outputs[COUNT] = tf.reshape(tf.cast(inputs[COUNT], tf.float32), [-1])
  return outputs


# ---------------------------------------------------------------------------------------------------
# run_fn (Trainer): user tower and item tower, |cosine| score, weighted log loss; top-k signatures
# ---------------------------------------------------------------------------------------------------

class Sizes:
  """Vocabulary sizes (without the OOV bucket) read from the transform graph."""

  def __init__(self, tf_transform_output: tft.TFTransformOutput):
    self.users = tf_transform_output.vocabulary_size_by_name(USER_VOCAB)
    self.tracks = tf_transform_output.vocabulary_size_by_name(TRACK_VOCAB)
    self.artists = tf_transform_output.vocabulary_size_by_name(ARTIST_VOCAB)
    self.tags = tf_transform_output.vocabulary_size_by_name(TAG_VOCAB)


def _tower(inputs: List[tf.Tensor], units: Sequence[int], output_dim: int, name: str) -> tf.Tensor:
  x = keras.layers.Concatenate(name=f'{name}_inputs')(inputs) if len(inputs) > 1 else inputs[0]
  for i, width in enumerate(units):
    x = keras.layers.Dense(width, activation='relu', name=f'{name}_dense_{i}')(x)
  return keras.layers.Dense(output_dim, name=f'{name}_output')(x)


def build_towers(sizes: Sizes, n_user_features: int, max_tags: int, embedding_dim: int, units: Sequence[int],
                 output_dim: int, embedding_l2: float = 0.0) -> Tuple[keras.Model, keras.Model]:
  """User tower (user embedding + user features) and item tower (track, artist and mean tag embeddings), each
  ending in a linear layer of `output_dim`; every embedding carries an L2 penalty of `embedding_l2`."""
  def embedding(size, name):
    return keras.layers.Embedding(size, embedding_dim, name=name, embeddings_regularizer=(
        keras.regularizers.L2(embedding_l2) if embedding_l2 > 0 else None))
  user = keras.Input(shape=(), dtype=tf.int64, name=USER_INDEX)
  shares = keras.Input(shape=(n_user_features,), dtype=tf.float32, name=USER_TAG_SHARES)
  user_embedding = embedding(sizes.users + 1, 'user_embedding')(user)
  user_tower = keras.Model([user, shares], _tower([user_embedding, shares], units, output_dim, 'user'),
                           name='user_tower')
  track = keras.Input(shape=(), dtype=tf.int64, name=TRACK_INDEX)
  artist = keras.Input(shape=(), dtype=tf.int64, name=ARTIST_INDEX)
  tags = keras.Input(shape=(max_tags,), dtype=tf.int64, name=TAG_INDEX)
  track_embedding = embedding(sizes.tracks + 1, 'track_embedding')(track)
  artist_embedding = embedding(sizes.artists + 1, 'artist_embedding')(artist)
  tag_embeddings = embedding(sizes.tags + 2, 'tag_embedding')(tags)
  tag_mask = keras.layers.Lambda(lambda t: tf.cast(t > 0, tf.float32)[..., None], name='tag_mask')(tags)
  mean_tags = keras.layers.Lambda(
      lambda a: tf.reduce_sum(a[0] * a[1], 1) / tf.maximum(tf.reduce_sum(a[1], 1), 1.0), name='mean_tags')(
          [tag_embeddings, tag_mask])
  item_tower = keras.Model([track, artist, tags], _tower([track_embedding, artist_embedding, mean_tags], units,
                                                         output_dim, 'item'), name='item_tower')
  return user_tower, item_tower


def abs_cosine(user_vectors: tf.Tensor, item_vectors: tf.Tensor) -> tf.Tensor:
  """|cosine| of paired rows, clipped into (0, 1) so it is a probability for the log loss."""
  cosine = tf.reduce_sum(tf.math.l2_normalize(user_vectors, -1) * tf.math.l2_normalize(item_vectors, -1), -1)
  return tf.clip_by_value(tf.abs(cosine), 1e-6, 1.0 - 1e-6)


def cosine_probability(user_vectors: tf.Tensor, item_vectors: tf.Tensor) -> tf.Tensor:
  """(1 + cosine) / 2 of paired rows: the retrieval model's pair score as a probability, monotone in its rank."""
  cosine = tf.reduce_sum(tf.math.l2_normalize(user_vectors, -1) * tf.math.l2_normalize(item_vectors, -1), -1)
  return tf.clip_by_value((1.0 + cosine) / 2.0, 1e-6, 1.0 - 1e-6)


def rank_scores(user_vectors: Any, item_vectors: Any, objective: str) -> Any:
  """[U, T] ranking scores of unit vectors (NumPy or TF): cosine for `softmax`, |cosine| for `cosine`."""
  product = user_vectors @ item_vectors.T if isinstance(user_vectors, np.ndarray) else tf.matmul(
      user_vectors, item_vectors, transpose_b=True)
  return abs(product) if objective == 'cosine' else product


def build_model(user_tower: keras.Model, item_tower: keras.Model, objective: str = 'cosine') -> keras.Model:
  """The pair model: transformed features -> [B, 1] probability: |cosine| of the two towers (objective
  `cosine`) or (1 + cosine) / 2 (`softmax`)."""
  pair_score = abs_cosine if objective == 'cosine' else cosine_probability
  inputs = {name: keras.Input(shape=spec.shape[1:], dtype=spec.dtype, name=name)
            for tower in (user_tower, item_tower) for name, spec in zip(tower.input_names, tower.inputs)}
  user = user_tower([inputs[USER_INDEX], inputs[USER_TAG_SHARES]])
  item = item_tower([inputs[TRACK_INDEX], inputs[ARTIST_INDEX], inputs[TAG_INDEX]])
  score = keras.layers.Lambda(lambda a: pair_score(a[0], a[1])[:, None], name=PREDICTION)([user, item])
  return keras.Model(inputs, score)


def transformed_pairs(file_pattern: List[str], data_accessor, tf_transform_output: tft.TFTransformOutput,
                      sizes: Sizes) -> Tuple[Dict[str, np.ndarray], int]:
  """A transformed split in memory in (user, track) order, pairs outside the user or track vocabulary removed;
  returns (columns, how many were removed). Key order makes training independent of Beam's file order."""
  dataset = data_accessor.tf_dataset_factory(
      file_pattern, tfxio.TensorFlowDatasetOptions(batch_size=4096, shuffle=False, num_epochs=1),
      tf_transform_output.transformed_metadata.schema)
  batches = list(dataset.as_numpy_iterator())
  columns = {name: np.concatenate([batch[name] for batch in batches]) for name in batches[0]}
  keep = (columns[USER_INDEX] < sizes.users) & (columns[TRACK_INDEX] < sizes.tracks)
  order = np.lexsort((columns[TRACK][keep], columns[USER][keep]))
  return {name: values[keep][order] for name, values in columns.items()}, int((~keep).sum())


def entity_table(index: np.ndarray, size: int, values: np.ndarray) -> np.ndarray:
  """Row i = values of the first row whose index is i (i < size); rows never seen stay zero."""
  table = np.zeros((size,) + values.shape[1:], values.dtype)
  first = np.unique(index, return_index=True)[1]
  table[index[first]] = values[first]
  return table


def scale_listened_negatives(train: Dict[str, np.ndarray], factor: float) -> Dict[str, np.ndarray]:
  """The training pairs with the weight of each listened negative (listen_count <= 2) multiplied by `factor`.

  Ranking asks which tracks a user listens to at all, and a track listened once or twice is closer to a replayed
  one than a random track is: trained as full negatives (the reference's 1 / count weight), they push the user away
  from tracks of their own taste. On the bundled data's eval positives (seed 42, 1 sampled negative) recall@10 is
  0.074 with factor 1, 0.122 with 0.3, 0.150 with 0.1 and 0.154 with 0; popularity's is 0.066."""
  listened_negative = train[LABEL] == 0
  return {**train, WEIGHT: np.where(listened_negative, train[WEIGHT] * factor, train[WEIGHT]).astype(np.float32)}


def with_sampled_negatives(train: Dict[str, np.ndarray], sizes: Sizes, per_pair: int, weight: float,
                           seed: int) -> Dict[str, np.ndarray]:
  """The training pairs plus `per_pair` tracks per pair drawn uniformly from the track vocabulary for the same
  user (seeded; a track the user listened to in training is drawn again), as negatives (label 0, `weight`), with
  the drawn track's artist and tags. Without them the model only learns which listened tracks are replayed; with
  them it also learns which tracks a user listens to at all, which is what top-k serving ranks."""
  if per_pair <= 0:
    return train
  rng = np.random.default_rng(seed)
  listened = set(zip(train[USER_INDEX].tolist(), train[TRACK_INDEX].tolist()))
  users = np.repeat(train[USER_INDEX], per_pair)
  tracks = rng.integers(sizes.tracks, size=len(users))
  for i in np.flatnonzero([(u, t) in listened for u, t in zip(users.tolist(), tracks.tolist())]):
    while (users[i], tracks[i]) in listened:
      tracks[i] = rng.integers(sizes.tracks)
  negatives = {name: np.repeat(values, per_pair, axis=0) for name, values in train.items()}
  negatives.update({TRACK_INDEX: tracks, LABEL: np.zeros(len(users), np.float32),
                    WEIGHT: np.full(len(users), weight, np.float32),
                    ARTIST_INDEX: entity_table(train[TRACK_INDEX], sizes.tracks, train[ARTIST_INDEX])[tracks],
                    TAG_INDEX: entity_table(train[TRACK_INDEX], sizes.tracks, train[TAG_INDEX])[tracks]})
  return {name: np.concatenate([train[name], negatives[name]]) for name in train}


def fitted_pairs(train: Dict[str, np.ndarray], sizes: Sizes, config: Dict[str, Any]) -> Dict[str, np.ndarray]:
  """The pairs the model is fitted on: the training pairs with listened negatives weighted by
  `listened_negative_weight`, plus `sampled_negatives` unlistened tracks per training pair (weight
  `sampled_negative_weight`, seeded by `seed`); pairs of weight 0 left out."""
  pairs = with_sampled_negatives(scale_listened_negatives(train, float(config['listened_negative_weight'])), sizes,
                                 int(config['sampled_negatives']), float(config['sampled_negative_weight']),
                                 int(config['seed']))
  return {name: values[pairs[WEIGHT] > 0] for name, values in pairs.items()}


def sampled_softmax_loss(user_vectors: tf.Tensor, item_vectors: tf.Tensor, item_ids: tf.Tensor,
                         item_log_q: tf.Tensor, temperature: float, weights: Optional[tf.Tensor] = None
                         ) -> tf.Tensor:
  """Softmax cross-entropy of each row's own item against the batch's other items (in-batch negatives).

  Logits: cosine(user i, item j) / temperature - log Q(item j), where Q is the probability of drawing item j into a
  batch (its share of the training pairs): popular items are negatives more often than the catalogue's, and the
  correction undoes that bias (Yi et al., RecSys 2019; TFRS `Retrieval` with candidate_sampling_probability).
  Other rows holding the row's own item are not negatives (accidental hits masked). Returns the weighted mean."""
  users = tf.math.l2_normalize(user_vectors, -1)
  items = tf.math.l2_normalize(item_vectors, -1)
  logits = tf.matmul(users, items, transpose_b=True) / temperature - item_log_q[None, :]
  same_item = tf.equal(item_ids[:, None], item_ids[None, :])
  accidental = tf.logical_and(same_item, tf.logical_not(tf.eye(tf.shape(item_ids)[0], dtype=tf.bool)))
  logits = tf.where(accidental, tf.cast(-1e9, logits.dtype), logits)
  losses = -tf.linalg.diag_part(tf.nn.log_softmax(logits, axis=-1))
  if weights is None:
    return tf.reduce_mean(losses)
  return tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1e-12)


class RetrievalModel(keras.Model):
  """The two towers trained with sampled_softmax_loss on batches of listened (user, track) pairs."""

  def __init__(self, user_tower: keras.Model, item_tower: keras.Model, track_log_q: np.ndarray, temperature: float):
    super().__init__()
    self.user_tower, self.item_tower, self.temperature = user_tower, item_tower, temperature
    self.track_log_q = tf.constant(track_log_q, tf.float32)
    self.loss_tracker = keras.metrics.Mean(name='loss')

  def _loss(self, features: Dict[str, tf.Tensor], training: bool) -> tf.Tensor:
    users = self.user_tower([features[USER_INDEX], features[USER_TAG_SHARES]], training=training)
    items = self.item_tower([features[TRACK_INDEX], features[ARTIST_INDEX], features[TAG_INDEX]],
                            training=training)
    loss = sampled_softmax_loss(users, items, features[TRACK_INDEX],
                                tf.gather(self.track_log_q, features[TRACK_INDEX]), self.temperature)
    return loss, loss + tf.add_n(self.losses) if self.losses else loss

  def train_step(self, features):
    with tf.GradientTape() as tape:
      loss, total = self._loss(features, True)
    self.optimizer.apply_gradients(zip(tape.gradient(total, self.trainable_variables), self.trainable_variables))
    self.loss_tracker.update_state(loss)
    return {'loss': self.loss_tracker.result()}

  def test_step(self, features):
    self.loss_tracker.update_state(self._loss(features, False)[0])
    return {'loss': self.loss_tracker.result()}

  @property
  def metrics(self):
    return [self.loss_tracker]


def track_log_q(track_index: np.ndarray, n_tracks: int) -> np.ndarray:
  """log of each track's share of the training pairs (at least one pair each): its chance to be in a batch."""
  counts = np.maximum(np.bincount(track_index, minlength=n_tracks)[:n_tracks], 1).astype(np.float64)
  return np.log(counts / counts.sum()).astype(np.float32)


def fit_towers(train: Dict[str, np.ndarray], valid: Dict[str, np.ndarray], sizes: Sizes, config: Dict[str, Any],
               verbose: int = 2) -> Tuple[keras.Model, keras.Model, keras.Model]:
  """(user tower, item tower, pair model) fitted on the in-vocabulary training pairs with the `objective` setting:
  `softmax` (sampled_softmax_loss over every listened training pair, `temperature`) or `cosine` (the reference's
  weighted log loss of |cosine| on fitted_pairs). Seeded by `seed`."""
  seed = int(config['seed'])
  keras.utils.set_random_seed(seed)
  objective = str(config['objective'])
  user_tower, item_tower = build_towers(
      sizes, train[USER_TAG_SHARES].shape[1], int(config['max_tags']), int(config['embedding_dim']),
      [int(u) for u in str(config['tower_units']).split(',') if u.strip()], int(config['output_dim']),
      float(config.get('embedding_l2', 0.0)))
  model = build_model(user_tower, item_tower, objective)
  optimizer = keras.optimizers.Adam(float(config['learning_rate']))
  batch_size, epochs = int(config['batch_size']), int(config['epochs'])
  if objective == 'softmax':
    names = [USER_INDEX, USER_TAG_SHARES, TRACK_INDEX, ARTIST_INDEX, TAG_INDEX]

    def dataset(columns, shuffle):
      data = tf.data.Dataset.from_tensor_slices({n: columns[n] for n in names})
      if shuffle:
        data = data.shuffle(len(columns[TRACK_INDEX]), seed=seed, reshuffle_each_iteration=True)
      # Full batches only in training (every row has the same number of in-batch negatives), fewer rows than one
      # batch make one smaller batch.
      return data.batch(max(1, min(batch_size, len(columns[TRACK_INDEX]))), drop_remainder=shuffle)
    retrieval = RetrievalModel(user_tower, item_tower, track_log_q(train[TRACK_INDEX], sizes.tracks),
                               float(config['temperature']))
    retrieval.compile(optimizer=optimizer)
    retrieval.fit(dataset(train, True), epochs=epochs, validation_data=dataset(valid, False) if len(
        valid[TRACK_INDEX]) else None, verbose=verbose)
  elif objective == 'cosine':
    model.compile(optimizer=optimizer, loss=keras.losses.BinaryCrossentropy(),
                  weighted_metrics=[keras.metrics.AUC(name='auc')])

    def dataset(columns, shuffle):
      data = tf.data.Dataset.from_tensor_slices(({n: columns[n] for n in model.input_names},
                                                 columns[LABEL][:, None], columns[WEIGHT]))
      if shuffle:
        data = data.shuffle(len(columns[LABEL]), seed=seed, reshuffle_each_iteration=True)
      return data.batch(batch_size)
    model.fit(dataset(fitted_pairs(train, sizes, config), True), epochs=epochs,
              validation_data=dataset(valid, False) if len(valid[LABEL]) else None, verbose=verbose)
  else:
    raise ValueError(f'objective must be softmax or cosine, not {objective!r}')
  return user_tower, item_tower, model


def tower_vectors(user_tower: keras.Model, item_tower: keras.Model, train: Dict[str, np.ndarray], sizes: Sizes
                  ) -> Tuple[np.ndarray, np.ndarray]:
  """Unit vectors of every vocabulary user and track ([users, d], [tracks, d]); user features and item features
  taken from their training pairs."""
  shares = entity_table(train[USER_INDEX], sizes.users, train[USER_TAG_SHARES])
  users = tf.math.l2_normalize(user_tower([np.arange(sizes.users), shares]), -1).numpy()
  items = tf.math.l2_normalize(item_tower([
      np.arange(sizes.tracks), entity_table(train[TRACK_INDEX], sizes.tracks, train[ARTIST_INDEX]),
      entity_table(train[TRACK_INDEX], sizes.tracks, train[TAG_INDEX])]), -1).numpy()
  return users, items


class _Exporter(tf.Module):
  """The serving graph: towers, the transform layer, lookup tables and the precomputed item vectors."""

  def __init__(self, model: keras.Model, user_tower: keras.Model, item_tower: keras.Model,
               tf_transform_output: tft.TFTransformOutput, train: Dict[str, np.ndarray], sizes: Sizes, k: int,
               objective: str, exclude_training_tracks: bool):
    super().__init__()
    self.model, self.user_tower, self.item_tower, self.objective = model, user_tower, item_tower, objective
    self.tft_layer = tf_transform_output.transform_features_layer()
    self.raw_feature_spec = {name: spec for name, spec in tf_transform_output.raw_feature_spec().items()
                             if name not in (LABEL, WEIGHT, COUNT)}

    def lookup(name):
      return tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
          tf_transform_output.vocabulary_file_by_name(name), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
          tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER), -1)
    self.user_lookup, self.track_lookup = lookup(USER_VOCAB), lookup(TRACK_VOCAB)
    self.track_names = tf.constant(tf_transform_output.vocabulary_by_name(TRACK_VOCAB))
    users, items = tower_vectors(user_tower, item_tower, train, sizes)
    self.user_vectors, self.item_vectors = tf.constant(users), tf.constant(items)
    # Each user's training tracks, as a ragged row per user index (none when they are not excluded).
    order = np.lexsort((train[TRACK_INDEX], train[USER_INDEX])) if exclude_training_tracks else np.zeros(0, int)
    self.listened = tf.RaggedTensor.from_value_rowids(
        tf.constant(train[TRACK_INDEX][order].astype(np.int64)),
        tf.constant(train[USER_INDEX][order].astype(np.int64)), nrows=sizes.users)
    counts = np.bincount(train[TRACK_INDEX], weights=train[COUNT], minlength=sizes.tracks)
    self.popularity = tf.constant((counts / max(counts.max(), 1.0)).astype(np.float32))
    popular = np.argsort(-counts, kind='stable')[:k]
    self.fallback_tracks = tf.constant(self.track_names.numpy()[popular])
    self.fallback_scores = tf.constant(counts[popular].astype(np.float32))
    self.k = k

  def serve(self, serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
    """(user, track) pair examples -> |cosine| probability and the popularity baseline's score."""
    transformed = self.tft_layer(tf.io.parse_example(serialized, self.raw_feature_spec))
    probability = tf.reshape(self.model({name: transformed[name] for name in self.model.input_names}), [-1])
    track = tf.minimum(transformed[TRACK_INDEX], tf.cast(tf.shape(self.popularity)[0] - 1, tf.int64))
    in_vocabulary = transformed[TRACK_INDEX] < tf.cast(tf.shape(self.popularity)[0], tf.int64)
    return {PREDICTION: probability,
            POPULARITY: tf.where(in_vocabulary, tf.gather(self.popularity, track), 0.0)}

  def top_k(self, user_names: tf.Tensor) -> Dict[str, tf.Tensor]:
    """User names -> the k tracks of largest score (cosine, or |cosine| for the `cosine` objective; brute force;
    the user's training tracks ranked last when excluded, scored EXCLUDED_SCORE) or, for a user outside the
    vocabulary, the k most listened training tracks (scores = their training listens) with is_fallback true."""
    index = self.user_lookup.lookup(tf.reshape(user_names, [-1]))
    known = index >= 0
    vectors = tf.gather(self.user_vectors, tf.maximum(index, 0))
    all_scores = rank_scores(vectors, self.item_vectors, self.objective)
    listened = tf.gather(self.listened, tf.maximum(index, 0))
    mask = tf.scatter_nd(tf.stack([listened.value_rowids(), listened.flat_values], 1),
                         tf.ones_like(listened.flat_values, tf.bool), tf.shape(all_scores, out_type=tf.int64))
    top_scores, top = tf.math.top_k(tf.where(mask, EXCLUDED_SCORE, all_scores), k=self.k)
    batch = tf.shape(index)[0]
    fallback_tracks = tf.tile(self.fallback_tracks[None], [batch, 1])
    fallback_scores = tf.tile(self.fallback_scores[None], [batch, 1])
    return {TOP_TRACKS: tf.where(known[:, None], tf.gather(self.track_names, top), fallback_tracks),
            TOP_SCORES: tf.where(known[:, None], top_scores, fallback_scores), IS_FALLBACK: tf.logical_not(known)}

  def embed(self, names: tf.Tensor, table: tf.lookup.StaticHashTable, vectors: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Names -> their unit vectors and whether each is in the vocabulary (vector 0 stands in when not)."""
    index = table.lookup(tf.reshape(names, [-1]))
    return {'vectors': tf.gather(vectors, tf.maximum(index, 0)), 'in_vocabulary': index >= 0}

  def signatures(self) -> Dict[str, Any]:
    """serving_default and the top-k / embedding signatures, as concrete functions."""
    examples = tf.TensorSpec([None], tf.string, name='examples')
    names = tf.TensorSpec([None], tf.string, name='names')
    return {
        'serving_default': tf.function(self.serve, input_signature=[examples]).get_concrete_function(),
        TOP_K_SIGNATURE: tf.function(self.top_k, input_signature=[
            tf.TensorSpec([None], tf.string, name='user_names')]).get_concrete_function(),
        TOP_K_EXAMPLES_SIGNATURE: tf.function(
            lambda s: self.top_k(tf.io.parse_example(s, {USER: tf.io.FixedLenFeature([], tf.string)})[USER]),
            input_signature=[examples]).get_concrete_function(),
        EMBED_USERS: tf.function(lambda n: self.embed(n, self.user_lookup, self.user_vectors),
                                 input_signature=[names]).get_concrete_function(),
        EMBED_TRACKS: tf.function(lambda n: self.embed(n, self.track_lookup, self.item_vectors),
                                  input_signature=[names]).get_concrete_function(),
    }


def run_fn(fn_args) -> None:
  """Trains the two towers on the in-vocabulary training pairs (fit_towers, objective `objective`) and saves a
  Keras-2 SavedModel with serving_default, top_k, top_k_examples, embed_users and embed_tracks."""
  from pipelines import tuning  # pylint: disable=g-import-not-at-top
  config = tuning.tuned_values(fn_args, fn_args.custom_config)
  if getattr(fn_args, 'hyperparameters', None):
    config['output_dim'] = config['embedding_dim']  # the tuned size is both the embedding's and the output's
  keras.utils.set_random_seed(int(config['seed']))
  tf.config.experimental.enable_op_determinism()
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  sizes = Sizes(tf_transform_output)
  train, train_oov = transformed_pairs(fn_args.train_files, fn_args.data_accessor, tf_transform_output, sizes)
  valid, eval_oov = transformed_pairs(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, sizes)
  logging.info('Training on %d pairs (%d out of vocabulary removed; eval %d, %d removed); %d users, %d tracks, '
               '%d artists, %d tags', len(train[LABEL]), train_oov, len(valid[LABEL]), eval_oov, sizes.users,
               sizes.tracks, sizes.artists, sizes.tags)
  user_tower, item_tower, model = fit_towers(train, valid, sizes, config)
  exporter = _Exporter(model, user_tower, item_tower, tf_transform_output, train, sizes,
                       min(int(config['top_k']), sizes.tracks), str(config['objective']),
                       str(config['exclude_training_tracks']) == 'on')
  model.exporter = exporter
  model.save(fn_args.serving_model_dir, save_format='tf', signatures=exporter.signatures())


def sampled_recall(user_vectors: np.ndarray, track_vectors: np.ndarray, pairs: Dict[str, np.ndarray], objective: str,
                   num_samples: int, seed: int, k: int) -> float:
  """recall@k of the positive pairs (label 1) of `pairs` against `num_samples` sampled tracks (the
  RecallEvaluator's protocol); NaN when there is no positive."""
  positive = pairs[LABEL] > 0
  users, tracks = pairs[USER_INDEX][positive], pairs[TRACK_INDEX][positive]
  samples = sample_negatives(tracks, len(track_vectors), num_samples, seed)
  candidates = np.concatenate([tracks[:, None], samples], axis=1)
  products = np.einsum('pd,pnd->pn', user_vectors[users], track_vectors[candidates])
  scored = np.abs(products) if objective == 'cosine' else products
  return recall_at_k(ranks(scored[:, 0], scored[:, 1:]), [k])[k]


TUNED = ('embedding_dim', 'temperature', 'learning_rate', 'embedding_l2')


def search_space() -> 'keras_tuner.HyperParameters':
  """The Tuner's space: embedding size, softmax temperature, learning rate, embedding L2."""
  import keras_tuner  # pylint: disable=g-import-not-at-top
  hp = keras_tuner.HyperParameters()
  hp.Choice('embedding_dim', [32, 64])
  hp.Choice('temperature', [0.3, 0.5, 0.7])
  hp.Choice('learning_rate', [0.003, 0.01])
  hp.Choice('embedding_l2', [0.0, 1e-5])
  return hp


def tuner_fn(fn_args):
  """TFX Tuner: a seeded random search (pipelines.tuning) of `tuning_trials` trials over search_space(), each
  fitting the towers for `tuning_epochs` epochs and scored by eval recall@10 (sampled protocol, maximized)."""
  from pipelines import tuning  # pylint: disable=g-import-not-at-top
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
  config = fn_args.custom_config
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  sizes = Sizes(tf_transform_output)
  train, _ = transformed_pairs(fn_args.train_files, fn_args.data_accessor, tf_transform_output, sizes)
  valid, _ = transformed_pairs(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, sizes)

  def build_and_score(hp) -> float:
    trial = {**config, **{name: hp.get(name) for name in TUNED}, 'epochs': int(config['tuning_epochs'])}
    trial['output_dim'] = trial['embedding_dim']
    user_tower, item_tower, _ = fit_towers(train, valid, sizes, trial, verbose=0)
    users, tracks = tower_vectors(user_tower, item_tower, train, sizes)
    value = sampled_recall(users, tracks, valid, str(config['objective']), int(config['recall_samples']),
                           int(config['seed']), 10)
    return value if math.isfinite(value) else 0.0

  tuner = tuning.make_tuner(build_and_score, search_space(), 'eval_recall_at_10', 'max',
                            int(config['tuning_trials']), int(config['seed']), fn_args.working_dir,
                            settings=config)
  return tfx.components.TunerFnResult(tuner=tuner, fit_kwargs={})


# ---------------------------------------------------------------------------------------------------
# eval_config (Evaluator): the pair classifier and the popularity score on the same test pairs
# ---------------------------------------------------------------------------------------------------

def eval_config(min_auc: float, max_auc_decrease: float) -> tfma.EvalConfig:
  """AUC, PR-AUC, log loss, calibration of |cosine| as the probability of a repeat listen (label) and of the
  popularity score, on the in-vocabulary test pairs. Blessing (on probability): AUC at least `min_auc` and at
  most `max_auc_decrease` below the latest blessed model's."""
  return metrics.classifier_eval_config(PREDICTION, POPULARITY, LABEL, min_auc, max_auc_decrease,
                                        [tfma.SlicingSpec()])


# ---------------------------------------------------------------------------------------------------
# recall@k against sampled tracks (the reference's definition), for the model and the baselines
# ---------------------------------------------------------------------------------------------------

def sample_negatives(positives: np.ndarray, vocabulary_size: int, n: int, seed: int) -> np.ndarray:
  """[P, n'] track indices per positive, drawn without replacement from the vocabulary without the positive track
  (n' = min(n, vocabulary_size - 1)), seeded: the same samples for every model."""
  rng = np.random.default_rng(seed)
  n = min(n, vocabulary_size - 1)
  samples = np.stack([rng.choice(vocabulary_size - 1, size=n, replace=False) for _ in positives]) if len(
      positives) else np.zeros((0, n), np.int64)
  return samples + (samples >= positives[:, None])  # skip the positive's own index


def ranks(positive_scores: np.ndarray, sampled_scores: np.ndarray) -> np.ndarray:
  """0-based rank of each positive among its sampled tracks: samples scoring higher, ties counted half."""
  higher = (sampled_scores > positive_scores[:, None]).sum(1)
  ties = (sampled_scores == positive_scores[:, None]).sum(1)
  return higher + 0.5 * ties


def recall_at_k(rank: np.ndarray, ks: Iterable[int]) -> Dict[int, float]:
  """k -> share of positives whose rank is below k."""
  return {k: float((rank < k).mean()) if len(rank) else float('nan') for k in ks}


def catalog_metrics(scores_matrix: np.ndarray, excluded: np.ndarray, relevant: np.ndarray, ks: Iterable[int],
                    chunk: int = 512) -> Dict[str, float]:
  """Full-catalog recall@k and NDCG@k: each user's tracks ranked by score ([U, T]), `excluded` tracks (the user's
  training tracks) removed, ties broken by vocabulary order. recall_at_k: share of the relevant (user, track) pairs
  (the positive test pairs) ranked in the user's top k; ndcg_at_k: mean over users with a relevant track of
  DCG@k / ideal DCG@k (binary gains, 1 / log2(rank + 1))."""
  ks = sorted(set(int(k) for k in ks))
  max_k = min(max(ks), scores_matrix.shape[1])
  discount = 1.0 / np.log2(np.arange(2, max_k + 2))
  hits_at = {k: 0.0 for k in ks}
  ndcg_sum = {k: 0.0 for k in ks}
  for start in range(0, len(scores_matrix), chunk):
    block = np.where(excluded[start:start + chunk], -np.inf, scores_matrix[start:start + chunk].astype(np.float64))
    top = np.argsort(-block, axis=1, kind='stable')[:, :max_k]
    block_relevant = relevant[start:start + chunk]
    hits = np.take_along_axis(block_relevant, top, axis=1) & np.isfinite(np.take_along_axis(block, top, axis=1))
    n_relevant = block_relevant.sum(1)
    for k in ks:
      hits_at[k] += hits[:, :k].sum()
      ideal = np.cumsum(discount)[np.minimum(n_relevant, min(k, max_k)) - 1]
      dcg = (hits[:, :k] * discount[:k]).sum(1)
      ndcg_sum[k] += float((dcg / ideal)[n_relevant > 0].sum())
  total, users = relevant.sum(), int((relevant.sum(1) > 0).sum())
  out = {}
  for k in ks:
    out[f'catalog_recall_at_{k}'] = float(hits_at[k] / total) if total else float('nan')
    out[f'catalog_ndcg_at_{k}'] = ndcg_sum[k] / users if users else float('nan')
  return out
