import sys

from passgate.cli import main

sys.exit(main())
