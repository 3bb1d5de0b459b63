"""The 2006 kernel client's import: ``from pxcluster.kernelclient import *``.

``InteractiveCluster``, ``RemoteKernel``, ``Scatter`` and ``NotDefined``, as the first IPython
kernel README uses them; they live in the client layer (``pxcluster.client.kernelclient``).
"""

from pxcluster.client.kernelclient import InteractiveCluster, NotDefined, RemoteKernel, Scatter

__all__ = ["InteractiveCluster", "NotDefined", "RemoteKernel", "Scatter"]
