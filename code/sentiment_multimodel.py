"""Multi-model sentiment training job (Dataproc `main_python_file_uri`; the package ships as a zip
in `python_file_uris`). Run `python code/sentiment_multimodel.py --help` for the arguments."""

import sys

from sentiment_mlops.training.job import main

if __name__ == "__main__":
    sys.exit(main())
