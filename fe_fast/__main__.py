"""``python -m fe_fast ...`` = the ``fe-fast`` command (for environments without the entry point)."""
from fe_fast.cli import main

raise SystemExit(main())
