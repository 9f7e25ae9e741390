"""Evaluation of geolocation models: generation, prediction records, the literature's metrics, plots,
published results to compare with, and competition files. `python -m open_r1.eval_geo` runs it all;
`python -m open_r1.predict` answers for single photos."""
