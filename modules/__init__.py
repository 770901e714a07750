"""Module files (build_examples, preprocessing_fn, run_fn, eval_config) per use case."""
import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
