"""Custom TFX components shared by the use cases."""
