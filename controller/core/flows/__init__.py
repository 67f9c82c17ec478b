"""Flow files: YAML -> typed model with file:line:col errors, lint, JSON Schema."""
