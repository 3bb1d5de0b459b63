"""Dashboard layer (beside testing): a live web page of one cluster, served by its own process.

Needs the ``dashboard`` extra (Tornado): ``pip install 'pxcluster[dashboard]'``.
"""
