"""Reference servers the HTTP benchmark measures dropserve against, all on this machine."""
