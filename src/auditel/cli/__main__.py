import sys

from auditel.cli import main

sys.exit(main())
