"""Engine layer: the matplotlib backend of engines: Agg, whose ``show()`` sends the figures.

Engines have no screen. With this backend (engines set ``MPLBACKEND`` to it at start-up),
``plt.show()`` displays the open figures into the running request, which brings them back
to the client's notebook as PNG images, as a Jupyter kernel's inline backend does. Only
imported by matplotlib itself, once user code imports pyplot.
"""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg

from pxcluster.engine._display import flush_figures

FigureCanvas = FigureCanvasAgg


def show(*args: object, **kwargs: object) -> None:
    """Display every open figure in the client, then close them."""
    flush_figures()
