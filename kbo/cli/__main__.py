import sys

from kbo.cli import main

sys.exit(main())
