import sys

from peer.main import main

sys.exit(main())
