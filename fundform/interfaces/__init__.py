"""The ways in: the Python API (api.py, also importable as fundform.api), the `fundform` command (cli/, a module per
group of commands) and the live explorer (explorer/: its engine, its web application, its page assets).

May import: every layer below (base, inputs, formula, engine, outputs, studies); cli may import api and explorer.
"""
