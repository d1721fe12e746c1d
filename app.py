"""Development entry point: ``flask --app app run`` (``make run`` starts everything)."""
from stocklink import create_app

app = create_app()
