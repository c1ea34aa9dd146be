"""Outputs: what a run's outcome becomes. The output contract (schema.py) and every table declared once
(registry.py), atomic writes (write.py), the manifest, the DuckDB run warehouse, exports (CSV, Excel, Parquet),
comparisons (compare.py), the HTML report (report.py: its sections, SECTIONS, each a function of the run's Page),
its charts (charts.py) and maps, a design's report (design_report.py), the NHS allocation
letter (letter.py), the run summary, words for numbers (text.py), and the generated documents (the method of a
version, method.py, its sections method_sections.py and method_parts.py; the assumptions log).

May import: fundform.base, fundform.inputs, fundform.formula, fundform.engine.
"""
