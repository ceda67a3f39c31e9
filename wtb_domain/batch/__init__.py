"""Batch tests: a spec, a plan of variant-tree tasks, the tree runner, results and summaries."""
