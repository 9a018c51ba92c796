"""The Google Cloud backend: GCS objects and Dataproc jobs, through clients the caller passes in."""
