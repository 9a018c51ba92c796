"""Streaming serving job (Dataproc `main_python_file_uri`; the package ships as a zip in
`python_file_uris`). Both serving entry scripts run the same code: `python THIS_FILE --help`."""

import sys

from sentiment_mlops.serving.job import main

if __name__ == "__main__":
    sys.exit(main())
