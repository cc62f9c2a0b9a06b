"""Performance suites (`python -m bench`, in suites/, sharing harness/), the reference servers they
measure against (servers/), and the UCI study (`python -m bench.uci`)."""
