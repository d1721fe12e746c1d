"""The test app for a real gunicorn (``gunicorn tests.gunicorn_app:app``): the configuration of
the test that starts it, as JSON in ``STOCKLINK_TEST_CONFIG``."""
from __future__ import annotations

import json
import os

from stocklink import create_app

app = create_app(json.loads(os.environ["STOCKLINK_TEST_CONFIG"]))
