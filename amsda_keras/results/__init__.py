"""Results tables: the experiments behind docs/results.md and the report built from their runs."""
