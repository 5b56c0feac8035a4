"""The optimizer: build (sparse, vectorised) -> solve (HiGHS) -> decode -> explain."""
