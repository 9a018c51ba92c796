"""Fast tests: no Spark session, no servers."""
