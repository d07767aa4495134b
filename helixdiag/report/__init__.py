"""The report: its model (docs/report.md) and one renderer per format."""
