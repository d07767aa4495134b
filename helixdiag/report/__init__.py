"""The report: its model (SPEC.md §4) and one renderer per format."""
