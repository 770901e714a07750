"""The clv use case: its pipeline (pipeline.py) and the components only it uses."""
