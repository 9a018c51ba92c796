"""The Dataproc job specification: builders, validation against the proto types, gcloud commands, code packaging."""
