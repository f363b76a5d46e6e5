"""Support code for the tests: config factories, program runners, upstream schema validation."""
