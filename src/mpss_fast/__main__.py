"""``python -m mpss_fast``: the ``mpss`` command line."""

from .cli import main

raise SystemExit(main())
