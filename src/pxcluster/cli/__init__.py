"""CLI layer: the ``pxcluster``, ``pxcontroller`` and ``pxengine`` entry points."""
