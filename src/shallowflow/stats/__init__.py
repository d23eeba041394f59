"""Statistics of many runs: success bars and thresholds (:mod:`.thresholds`), the
fits of laws and slopes (:mod:`.fits`), and estimates over runs with their intervals
(:mod:`.resample`). Plain NumPy/SciPy on tables of outcomes."""
