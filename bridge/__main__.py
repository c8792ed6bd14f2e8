from .compare import main
import sys

sys.exit(main())
