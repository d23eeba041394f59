"""Statistics of many runs: success bars and thresholds (:mod:`.thresholds`), and the
fits of laws and slopes (:mod:`.fits`). Plain NumPy/SciPy on tables of outcomes."""
