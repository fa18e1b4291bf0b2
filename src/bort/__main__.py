import sys

from bort.cli import main

sys.exit(main())
