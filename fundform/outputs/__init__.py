"""Outputs: what a run's outcome becomes. The output contract (schema.py) and every table declared once
(registry.py), atomic writes (write.py), the manifest, the DuckDB run warehouse, exports (CSV, Excel, Parquet),
comparisons, the HTML report and its maps, a design's report, the run summary, and the generated documents (the
method of a version, the assumptions log).

May import: fundform.base, fundform.inputs, fundform.formula, fundform.engine.
"""
