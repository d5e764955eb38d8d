import sys

from mnist_bench.cli import main

sys.exit(main())
