"""helixdiag: diagnose the Helix frame-export video path hop by hop."""

__version__ = "0.1.0"
