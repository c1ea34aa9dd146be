"""Inputs: every table's contract (tables.py, contracts.py: the data dictionary's source), reading a dataset's files
strictly (files.py), the checks across tables and the plausibility bounds (checks.py), the dataset assembled from
them (dataset.py), boundary vintages (vintages.py), the checked-input cache (cache.py) and uncertainty files
(uncertainty.py). Nothing downstream runs
on a table that has not passed here.

May import: fundform.base.
"""
