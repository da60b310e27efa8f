"""``python -m sandbox``: serve the three sandbox portals in the foreground (see ``--help``)."""

from sandbox.server import main

raise SystemExit(main())
