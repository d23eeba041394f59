"""The theory: the closed forms of SPEC §4, the width p(n, eps) and the data checks of
SPEC §2."""
