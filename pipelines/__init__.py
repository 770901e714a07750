"""TFX pipelines for marketing and recommendation ML."""
import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
