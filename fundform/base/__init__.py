"""The foundation every layer stands on: errors and exit codes (errors.py), where the bundled resources live
(paths.py), run settings from options, environment and file (config.py), exact sums (numeric.py), lazily imported
libraries (lazy.py), named failpoints for the fault-injection tests (failpoints.py), the one reader of every TOML
file (toml.py) and the financial year as a value (years.py).

May import: nothing of fundform (only the standard library and third-party packages).
"""
