"""``python -m pxcluster.dashboard``: serve a cluster's dashboard (see ``_process``)."""

from pxcluster.dashboard._process import main

raise SystemExit(main())
