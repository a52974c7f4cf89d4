"""Database layer: models, engines, schema and every query the rest of dupfinder needs."""
