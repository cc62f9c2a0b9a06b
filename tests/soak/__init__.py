"""The soak test: `python -m tests.soak` drives a real server under mixed load with hot reloads
(driver.py) and scores what it recorded (report.py); tests/e2e/test_soak.py runs a short one."""
