"""Settings, storage URIs, naming, logging and processes: imports nothing else of the package."""
