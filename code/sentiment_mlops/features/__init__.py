"""Text features shared by training, the streaming job and the online server."""
