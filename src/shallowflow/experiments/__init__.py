"""The experiments: protocols as data, the figures, the studies, and the one resumable
sweep runner."""
