"""Production entry point: ``gunicorn wsgi:app``."""
from stocklink import create_app

app = create_app()
