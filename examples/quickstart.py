"""Quick start: a local cluster of 4 engines computing, then stopping.

Runs the IPython1 documents' eigenvalue example on every engine, a parallel map, and a
scatter/compute/gather, printing each result the way the seeds show them.
Run: ``python examples/quickstart.py``.
"""

import time

import pxcluster

EIGEN_LOOP = """
max_evals = []
for i in range(100):
    a = numpy.random.rand(10, 10)
    a = a + a.transpose()
    evals = numpy.linalg.eigvals(a)
    max_evals.append(evals[0].real)
"""


def main() -> None:
    began = time.perf_counter()
    with pxcluster.Cluster(n=4, profile="quickstart") as cluster:
        print(f"4 engines ready in {time.perf_counter() - began:.2f} s")
        mec = cluster.client()
        print("engine ids:", mec.get_ids())

        mec.execute("import numpy")
        mec.execute("a = numpy.random.rand(2, 2)")
        print(mec.execute("print(numpy.linalg.eigvals(a))"))

        mec.execute(EIGEN_LOOP)
        print(mec.execute('print("Average max eigenvalue is: ", sum(max_evals)/len(max_evals))'))

        parallel = mec.map(lambda x: x**10, range(32))
        assert parallel == [x**10 for x in range(32)]
        print("map(lambda x: x**10, range(32))[:6] =", parallel[:6])

        mec.scatter("x", range(1_000_000))
        mec.execute("partial = sum(i * i for i in x)")
        total = sum(mec.pull("partial"))
        assert total == sum(i * i for i in range(1_000_000))
        print("sum of squares below 1e6, in 4 parts:", total)
    print(f"cluster stopped; whole run {time.perf_counter() - began:.2f} s")


if __name__ == "__main__":
    main()
