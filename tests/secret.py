"""The tests' PORTAL_JWT_SECRET (41 bytes, over HS256's 32): every service a test starts gets it,
in process (tests.harness) or as a process (tests/conftest.py puts it in the environment)."""

SECRET = "test-secret-that-is-long-enough-for-hs256"
