import sys

from keras_nfnets.cli.parser import main

sys.exit(main())
