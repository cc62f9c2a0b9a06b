"""Hosting: how the app is run. One uvicorn process with a graceful drain, several supervised
processes on one port, or Ray Serve replicas. The app knows none of them: each host hands it
what it needs (its process peers, a reload relay) through `create_app`."""
