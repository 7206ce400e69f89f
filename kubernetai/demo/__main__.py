"""C{python -m kubernetai.demo}: the same as the C{kubernetai-demo} command."""

import sys

from kubernetai.demo import main

sys.exit(main())
