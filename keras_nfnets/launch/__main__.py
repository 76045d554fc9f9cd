"""``python -m keras_nfnets.launch --workers N -- COMMAND``: see :mod:`keras_nfnets.launch`."""

import sys

from keras_nfnets.launch import main

sys.exit(main())
