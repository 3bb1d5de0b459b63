"""Side-by-side benchmarks of pxcluster, ipyparallel, Dask distributed and a bare pyzmq relay.

Run ``python benchmarks/run.py`` (see ``benchmarks/README.md``). Nothing here is imported by
pxcluster itself or by its test suite, except the smoke test that keeps it working.
"""
