"""The batch_inference use case: its pipeline (pipeline.py) and the components only it uses."""
