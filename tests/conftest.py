"""Test set-up: Keras 2 for every process, the repository root on sys.path."""
import os
import sys

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
